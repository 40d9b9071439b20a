"""KFP component of the fold combiner (CPU image)."""

from kfp.dsl import Dataset, Input, Output

from ..common.kfp_component import stage_component


@stage_component("cpu")
def combine_folds(folds: Input[list[Dataset]], pred_probs: Output[Dataset]) -> str:
    """Joins the fold outputs into one N x K pred_probs matrix (clpipe combine-folds).

    Returns the output's URI, the value the mask generator reads.
    """
    from clpipe.components.common.kfp_component import run_cli
    from clpipe.components.combine_folds import cli

    run_cli(cli.main, ["--out", pred_probs.path, *[fold.path for fold in folds]])
    return pred_probs.uri
