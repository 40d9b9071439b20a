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
    from clpipe.components.common.artifacts import NoisyLabels
    from clpipe.components.common.cli import call_stage
    from clpipe.components.common.conditions import resolve_forget_rate
    from clpipe.components.coteach.stage import coteach

    # The setting was checked when the pipeline was configured; the labels artifact is noisy-labels' own.
    rate = resolve_forget_rate(forget_rate, NoisyLabels.read_summary(labels.path)["forget_rate_from_noise"])
    call_stage("coteach", coteach, dataset=dataset, train_labels=labels.path, train_mask=masks.path,
               method=method, recipe=recipe, seed=seed, epochs=epochs or None, batch_size=batch_size or None,
               lr=lr or None, forget_rate=rate, cnn_width=cnn_width or None, subset_per_class=subset_per_class,
               subset_seed=subset_seed, test_subset_per_class=test_per_class, test_subset_seed=subset_seed,
               progress=False, out=run.path)
