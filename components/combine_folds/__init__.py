"""Fold combiner stage: K fold outputs -> one (N, K) pred_probs matrix."""
