"""KFP component of the noisy-labels stage (CPU image): one condition's given labels."""

from kfp.dsl import Dataset, Output

from ..common.kfp_component import stage_component


@stage_component("cpu")
def noisy_labels(dataset: str, condition: dict, labels: Output[Dataset]):
    """Given labels of one condition (clpipe noisy-labels).

    Generated from the condition's noise amount, sparsity and seed the way the seed made its
    label files, or its label file validated against the dataset. Writes labels.npy (whole
    train split), noise_matrix.npy and summary.json.
    """
    import json

    from clpipe.components.common.cli import call_stage
    from clpipe.components.noisy_labels.stage import noisy_labels

    call_stage("noisy-labels", noisy_labels, dataset=dataset, condition=json.dumps(condition), out=labels.path)
