"""KFP components of the noisy-labels stage (CPU image): a condition's labels, given pred_probs."""

from kfp.dsl import Dataset, Input, Output

from ..common.kfp_component import stage_component


@stage_component("cpu")
def noisy_labels(dataset: str, condition: dict, labels: Output[Dataset]):
    """Given labels of one condition (clpipe noisy-labels make).

    Generated from the condition's noise amount, sparsity and seed the way the seed made its
    label files, or its label file validated against the dataset. Writes labels.npy (whole
    train split), noise_matrix.npy and summary.json.
    """
    import json

    from clpipe.components.common.kfp_component import run_cli
    from clpipe.components.noisy_labels import cli

    run_cli(
        cli.main, ["make", "--dataset", dataset, "--condition", json.dumps(condition), "--out", labels.path]
    )


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

    Replaces cross-validation for a condition that names its pred_probs (clpipe noisy-labels
    given-pred-probs). Returns the output's URI, the value the mask generator reads.
    """
    from clpipe.components.common.kfp_component import run_cli
    from clpipe.components.noisy_labels import cli

    run_cli(
        cli.main,
        [
            "given-pred-probs",
            "--dataset",
            dataset,
            "--labels",
            labels.path,
            "--pred-probs",
            pred_probs_url,
            "--subset-per-class",
            subset_per_class,
            "--subset-seed",
            subset_seed,
            "--out",
            pred_probs.path,
        ],
    )
    return pred_probs.uri
