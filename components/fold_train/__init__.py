"""Fold trainer stage: K-fold cross-validation for out-of-sample pred_probs."""
