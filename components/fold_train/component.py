"""KFP components of the fold trainer: the fold list (CPU image) and one fold (GPU image)."""

from kfp.dsl import Dataset, Input, Output

from ..common.kfp_component import stage_component


@stage_component("cpu")
def plan_folds(n_folds: int) -> list[int]:
    """The folds 0 .. n_folds-1 the cross-validation loop runs over."""
    from clpipe.components.fold_train.folds import check_n_folds

    check_n_folds(n_folds)
    return list(range(n_folds))


@stage_component("gpu")
def fold_train(
    dataset: str,
    labels: Input[Dataset],
    fold: int,
    n_folds: int,
    arch: str,
    epochs: int,
    batch_size: int,
    seed: int,
    stratify_by: str,
    fold_split: str,
    subset_per_class: int,
    subset_seed: int,
    fold_out: Output[Dataset],
):
    """Trains on K-1 folds and predicts the held-out fold (clpipe fold-train).

    epochs, batch_size 0 = the architecture's recipe. Uses the GPU when one is visible.
    """
    from clpipe.components.common.cli import call_stage
    from clpipe.components.fold_train.stage import fold_train

    call_stage("fold-train", fold_train, dataset=dataset, labels=labels.path, fold=fold,
               n_folds=n_folds, arch=arch, epochs=epochs or None, batch_size=batch_size or None, seed=seed,
               stratify_by=stratify_by, fold_split=fold_split, subset_per_class=subset_per_class,
               subset_seed=subset_seed, progress=False, out=fold_out.path)
