"""KFP components of the fold combiner (CPU image): join the folds, or take given pred_probs."""

from kfp.dsl import Dataset, Input, Output

from ..common.kfp_component import stage_component


@stage_component("cpu")
def combine_folds(folds: Input[list[Dataset]], pred_probs: Output[Dataset]) -> str:
    """Joins the fold outputs into one N x K pred_probs matrix (clpipe combine-folds).

    Returns the output's URI, the value the mask generator reads.
    """
    from clpipe.components.combine_folds.stage import combine_folds
    from clpipe.components.common.cli import call_stage

    call_stage("combine-folds", combine_folds, folds=[fold.path for fold in folds], out=pred_probs.path)
    return pred_probs.uri


@stage_component("cpu")
def given_pred_probs(
    dataset: str,
    pred_probs_url: str,
    subset_per_class: int,
    subset_seed: int,
    labels: Input[Dataset],
    pred_probs: Output[Dataset],
) -> str:
    """Pre-computed out-of-sample pred_probs in the fold combiner's output form.

    Replaces cross-validation for a condition that names its pred_probs (clpipe combine-folds
    --given-pred-probs). Returns the output's URI, the value the mask generator reads.
    """
    from clpipe.components.combine_folds.stage import combine_folds
    from clpipe.components.common.cli import call_stage

    call_stage("combine-folds", combine_folds, given_pred_probs=pred_probs_url, dataset=dataset,
               labels=labels.path, subset_per_class=subset_per_class, subset_seed=subset_seed,
               out=pred_probs.path)
    return pred_probs.uri
