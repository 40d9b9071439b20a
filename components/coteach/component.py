"""KFP component of the Co-Teaching trainer (GPU image)."""

from kfp.dsl import Dataset, Input, Model, Output

from ..common.kfp_component import stage_component


@stage_component("gpu")
def coteach(
    dataset: str,
    labels: Input[Dataset],
    masks: Input[Dataset],
    method: str,
    recipe: str,
    epochs: int,
    batch_size: int,
    lr: float,
    forget_rate: str,
    cnn_width: int,
    seed: int,
    subset_per_class: int,
    test_per_class: int,
    subset_seed: int,
    run: Output[Model],
):
    """Co-Teaching on the examples one method kept (clpipe coteach); method none = all examples.

    epochs, batch_size, lr, cnn_width 0 = the recipe's. forget_rate: "recipe", "noise" (half
    the condition's noise amount, the JAIR rule) or a number. Uses the GPU when one is visible.
    """
    from clpipe.components.common import storage
    from clpipe.components.common.artifacts import labels_url
    from clpipe.components.common.conditions import resolve_forget_rate
    from clpipe.components.common.kfp_component import override_flags, run_cli
    from clpipe.components.coteach import cli

    summary = storage.load_json(storage.join(labels.path, "summary.json"))
    rate = resolve_forget_rate(forget_rate, summary["forget_rate_from_noise"])
    run_cli(
        cli.main,
        [
            "--train-labels",
            labels_url(labels.path),
            "--train-mask",
            masks.path,
            "--method",
            method,
            "--recipe",
            recipe,
            "--seed",
            seed,
            *override_flags(
                {"--epochs": epochs, "--batch-size": batch_size, "--lr": lr, "--cnn-width": cnn_width}
            ),
            *(["--forget-rate", rate] if rate is not None else []),
            "--subset-per-class",
            subset_per_class,
            "--subset-seed",
            subset_seed,
            "--test-subset-per-class",
            test_per_class,
            "--test-subset-seed",
            subset_seed,
            "--no-progress",
            "--out",
            run.path,
            dataset,
        ],
    )
