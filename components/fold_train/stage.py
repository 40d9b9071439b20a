"""``clpipe fold-train``: one cross-validation fold -> its out-of-sample pred_probs.

Trains on K-1 folds of the train view and predicts the held-out fold (:mod:`.loop`), then
publishes ``OUT`` (:class:`~clpipe.components.common.artifacts.FoldOutput`): ``indices.npy``,
``pred_probs.npy``, ``labels.npy`` and ``metrics.json``, all at once when the fold finished.
While it trains, ``OUT/checkpoint.pt`` holds the state of the last checkpointed epoch (every
``checkpoint_every`` epochs, the recipe's cadence by default): the same command run again,
e.g. after a ``kill -9``, resumes from it and ends bit-identical on the CPU; a rerun with a
setting that changes the result is refused, naming it. The checkpoint is removed once the
fold's output is published (the publish replaces exactly what the output listed, the checkpoint
included).
"""

from __future__ import annotations

import logging
from typing import Literal

from ..common import storage
from ..common.artifacts import FoldOutput, labels_url
from ..common.labels import open_train_view
from .folds import FOLD_SPLITS
from .recipes import (
    ARCHS,
    COMPILE_MODES,
    HOLDOUT_TRANSFORMS,
    PRECISIONS,
    RECIPES,
    network_for,
    resolve_recipe,
)

log = logging.getLogger("clpipe.fold-train")


def fold_train(
    *,
    dataset: str,
    labels: str,
    fold: int,
    out: str,
    n_folds: int = 4,
    seed: int = 0,
    stratify_by: Literal["given", "dataset"] = "given",
    fold_split: Literal[FOLD_SPLITS] = "sklearn",
    arch: Literal[ARCHS] = "resnet50",
    recipe: Literal[tuple(RECIPES)] | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    holdout_transform: Literal[HOLDOUT_TRANSFORMS] | None = None,
    precision: Literal[PRECISIONS] | None = None,
    compile: Literal[COMPILE_MODES] | None = None,
    checkpoint_every: int | None = None,
    subset_per_class: int = 0,
    subset_seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> FoldOutput:
    """Trains on K-1 folds of the train view and predicts the held-out fold.

    Args:
        dataset: ImageFolder root, .npz, or directory with *train.npz/*test.npz (path or URL).
        labels: Given labels: seed JSON (.json/.json.gz, file -> label), .npy in ImageFolder order, or a
            noisy-labels output directory (path or URL); the network trains on these.
        fold: Fold to hold out, 0 <= fold < n_folds.
        out: Output directory (path or URL).
        n_folds: K of the K-fold split (the paper's: 4).
        seed: Seed of the split, the init, the batch order and the augmentation.
        stratify_by: Stratify the folds by the given labels or by the dataset's labels (the seed's choice).
        fold_split: Split rule: today's scikit-learn StratifiedKFold, or sklearn-0.20, the assignment of
            scikit-learn 0.19-0.20 behind the paper's published pred_probs.
        arch: Network (the paper's: resnet50), or auto: chosen by the dataset's resolution (32 px airbench94,
            up to 127 px resnet18, else resnet50).
        recipe: Hyperparameter preset (default: the network's; airbench for the airbench networks, paper
            for the ResNets).
        epochs: Override the recipe's epochs.
        batch_size: Override the recipe's batch size.
        lr: Override the recipe's learning rate.
        holdout_transform: Score the held-out images clean, or once through the training crop+flip as the
            seed did (paper recipe: train; airbench: clean).
        precision: On CUDA, fp32 (the seed's; paper recipe) or bf16 autocast (airbench); the CPU is
            always fp32.
        compile: torch.compile the network: off, on CUDA only (airbench), or on (also on the CPU).
        checkpoint_every: Epochs between checkpoints in OUT (0 = none; default: the recipe's cadence).
        subset_per_class: Use a class-stratified random subset of this many train images per class (0 = all).
        subset_seed: Seed of that subset.
        device: auto (the GPU if present), cpu, cuda, cuda:1 ...
        progress: Show a progress bar (--no-progress: logs only).
    """
    from ..common import training  # torch: imported here, so the CLI's --help needs no torch
    from ..common.prepare import train_statistics
    from .loop import load_checkpoint, train_fold

    inputs = [dataset, labels]
    storage.check_output(out, stage=FoldOutput.STAGE, inputs=inputs)
    torch_device = training.select_device(device)
    view, given = open_train_view(dataset, labels_url(labels), subset_per_class, subset_seed)
    images = view.pixels()  # streamed from packed shards, never whole in memory
    network = network_for(arch, images.shape[1])
    chosen = resolve_recipe(
        network,
        recipe,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        holdout_transform=holdout_transform,
        precision=precision,
        compile=compile,
        checkpoint_every=checkpoint_every,
    )
    # While it trains, the output holds the checkpoint alone (with a manifest); the final publish
    # replaces it with the fold's files, so the checkpoint goes with the publish that makes it useless.
    work = storage.resumable_output(out, stage=FoldOutput.STAGE, inputs=inputs)
    checkpoint_url = storage.join(out, FoldOutput.CHECKPOINT)
    previous = work.previous(FoldOutput.CHECKPOINT)
    resume = None if previous is None else load_checkpoint(previous, checkpoint_url)
    result = train_fold(
        images,
        given,
        fold=fold,
        n_folds=n_folds,
        seed=seed,
        arch=network,
        recipe=chosen,
        fold_split=fold_split,
        stratify_labels=view.labels if stratify_by == "dataset" else None,
        num_classes=view.num_classes,
        classes=view.classes,
        normalisation=train_statistics(dataset),
        device=torch_device,
        resume=resume,
        resume_source=checkpoint_url,
        write_checkpoint=lambda data: work.publish({FoldOutput.CHECKPOINT: data}),
        progress=progress,
    )
    result.metrics.update(
        dataset=dataset,
        labels=labels,
        classes=list(view.classes),
        dataset_fingerprint=view.fingerprint(),
        arch_requested=arch,
        stratify_by=stratify_by,
        subset_per_class=subset_per_class,
        subset_seed=subset_seed,
    )
    output = FoldOutput(out, result.indices, result.pred_probs, result.labels, result.metrics)
    output.write(out, inputs)
    return output
