"""KFP component of the mask generator (CPU image)."""

from kfp.dsl import Dataset, Output

from ..common.kfp_component import stage_component


@stage_component("cpu")
def make_masks(pred_probs_uri: str, compat: str, masks: Output[Dataset]):
    """Keep-masks of all five confident-learning methods (clpipe make-masks).

    Reads pred_probs.npy and labels.npy from pred_probs_uri (a fold combiner or given
    pred_probs output, by URL). compat: "" = cleanlab 2.9, "cleanlab-2021" = the seed's.
    """
    from clpipe.components.common import storage
    from clpipe.components.common.kfp_component import run_cli
    from clpipe.components.common.labels import LABELS_FILE
    from clpipe.components.make_masks import cli

    compat_flags = ["--compat", compat] if compat else []
    run_cli(
        cli.main,
        [
            "--labels",
            storage.join(pred_probs_uri, LABELS_FILE),
            "--pred-probs",
            pred_probs_uri,
            *compat_flags,
            "--out",
            masks.path,
        ],
    )
