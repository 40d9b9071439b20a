"""KFP component of the mask generator (CPU image)."""

from kfp.dsl import Dataset, Output

from ..common.kfp_component import stage_component


@stage_component("cpu")
def make_masks(pred_probs_uri: str, compat: str, masks: Output[Dataset]):
    """Keep-masks of all five confident-learning methods (clpipe make-masks).

    Reads pred_probs.npy and labels.npy from pred_probs_uri (a fold combiner or given
    pred_probs output, by URL). compat: "" = cleanlab 2.9, "cleanlab-2021" = the seed's.
    """
    from clpipe.components.common.artifacts import labels_url
    from clpipe.components.common.cli import call_stage
    from clpipe.components.make_masks.stage import make_masks

    call_stage("make-masks", make_masks, labels=labels_url(pred_probs_uri), pred_probs=pred_probs_uri,
               compat=compat or None, out=masks.path)
