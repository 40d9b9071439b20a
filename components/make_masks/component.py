"""KFP component of the mask generator (CPU image)."""

from kfp.dsl import Dataset, Output

from ..common.kfp_component import stage_component


@stage_component("cpu")
def make_masks(pred_probs_uri: str, compat: str, dataset: str, subset_per_class: int, subset_seed: int,
               issue_method: str, masks: Output[Dataset]):
    """Keep-masks of all five confident-learning methods and the review files (clpipe make-masks).

    Reads pred_probs.npy and labels.npy from pred_probs_uri (a fold combiner or given
    pred_probs output, by URL). compat: "" = cleanlab 2.9, "cleanlab-2021" = the seed's.
    dataset, subset_per_class and subset_seed name the rows the pred_probs describe; with them
    the output also holds label_issues.csv (is_label_issue from issue_method), issues_per_class.csv,
    noise_matrix.npy and cleaned labels per method.
    """
    from clpipe.components.common.artifacts import labels_url
    from clpipe.components.common.cli import call_stage
    from clpipe.components.make_masks.stage import make_masks

    call_stage("make-masks", make_masks, labels=labels_url(pred_probs_uri), pred_probs=pred_probs_uri,
               compat=compat or None, dataset=dataset, subset_per_class=subset_per_class,
               subset_seed=subset_seed, issue_method=issue_method, out=masks.path)
