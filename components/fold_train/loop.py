"""Fold trainer: train on K-1 folds, predict the held-out fold (confident learning, step 1).

Confident learning needs *out-of-sample* predicted probabilities for every training
example (cleanlab issues #52, #63): with K-fold cross-validation each example is scored by
a model that never saw it. One call of :func:`train_fold` is one fold task of the pipeline:
it trains fold ``k``'s model on the other K-1 folds and returns the softmax probabilities of
the held-out rows. The fold combiner joins the K outputs into the (N, K) ``pred_probs``.

The split (:mod:`.folds`) is ``StratifiedKFold(n_splits=K, shuffle=True, random_state=seed)``
as in the seed (``cifar10_train_crossval.py``), today's or the seed's scikit-learn's rule
(``fold_split``), stratified by the given labels by default (all a real user has) or by the
dataset labels (the seed's choice: for its noisy CIFAR-10 the folders are the *true* classes).
Hyperparameters are :mod:`.recipes`; the networks :mod:`.models`. This file reads top to
bottom: optimiser, learning-rate schedule, Lookahead, the training loop with its
checkpoints, then the entry point.

Checkpoints (``common.checkpoints``): every ``recipe.checkpoint_every`` epochs the whole
training state goes to ``write_checkpoint``; :func:`train_fold` given it back as ``resume``
continues from there and ends bit-identical on the CPU to an uninterrupted run, and refuses
it when a setting that determines the result differs.

Differences from the seed, on purpose: the seed kept the checkpoint with the best
*test-set* accuracy for each fold, which selects on the test set; clpipe predicts with the
final model. Batches, crops and flips come from clpipe's own seeded streams. The seed normalised
with CIFAR-10's per-channel mean and std; so does clpipe for a dataset without statistics (the
seed's CIFAR-10 files: the reproduction is unchanged), while a dataset written by ``clpipe data
prepare`` is normalised with its own (``prepared.json``), since CIFAR-10's colours say nothing
about, e.g., grayscale scans. Networks other than the seed's ``resnet50`` take the number of
classes and the resolution from the dataset (:func:`~.recipes.network_for`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..common import checkpoints, training
from ..common.checks import fingerprint
from ..common.errors import InputError
from .folds import fold_indices
from .models import AirbenchNet, build_model
from .recipes import Recipe, resolve_recipe

log = logging.getLogger(__name__)

#: Trainer name and layout version written into every fold checkpoint.
CHECKPOINT_KIND = "fold-train"
CHECKPOINT_FORMAT = 1


@dataclass
class FoldResult:
    """Out-of-sample predictions of one fold.

    Attributes:
        indices: (n_k,) int64 rows of the train view held out in this fold.
        pred_probs: (n_k, K) float32 softmax probabilities for those rows.
        labels: (n_k,) int64 given labels of those rows.
        metrics: Accuracy, timings and settings (see docs/architecture.md).
    """

    indices: np.ndarray
    pred_probs: np.ndarray
    labels: np.ndarray
    metrics: dict


# ================================================================================================
# Optimiser
# ================================================================================================


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD as the recipe says; for ``airbench`` its decoupled hyperparameters converted to torch's."""
    if recipe.schedule != "airbench":
        return torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov,
            weight_decay=recipe.weight_decay,
        )
    # airbench94: hyperparameters are given per 1024 examples with a summed loss; convert
    # them to PyTorch's coupled SGD (weight decay is divided by the lr it is multiplied by).
    kilostep_scale = 1024 * (1 + 1 / (1 - recipe.momentum))
    lr = recipe.lr / kilostep_scale
    wd = recipe.weight_decay * recipe.batch_size / kilostep_scale
    lr_biases = lr * recipe.bias_scaler
    trainable = [
        (name, p) for name, p in model.named_parameters() if p.requires_grad or name == "whiten.bias"
    ]
    norm_biases = [p for name, p in trainable if "norm" in name]
    others = [p for name, p in trainable if "norm" not in name]
    return torch.optim.SGD(
        [
            {"params": norm_biases, "lr": lr_biases, "weight_decay": wd / lr_biases},
            {"params": others, "lr": lr, "weight_decay": wd / lr},
        ],
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
    )


# ================================================================================================
# Learning-rate schedule
# ================================================================================================


def lr_schedule(recipe: Recipe, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at each step."""
    if recipe.schedule == "multistep":
        milestones = [
            round(recipe.epochs * 150 / 350) * steps_per_epoch,
            round(recipe.epochs * 250 / 350) * steps_per_epoch,
        ]
        return lambda step: 0.1 ** sum(step >= m for m in milestones)
    if recipe.schedule == "airbench":
        warmup = max(int(total_steps * 0.23), 1)

        def airbench(step: int) -> float:
            if step < warmup:
                frac = step / warmup
                return 0.2 * (1 - frac) + 1.0 * frac
            frac = (step - warmup) / max(total_steps - warmup, 1)
            return 1.0 * (1 - frac) + 0.07 * frac

        return airbench
    raise InputError("recipe", "schedule", f"unknown schedule {recipe.schedule!r}")


# ================================================================================================
# Lookahead
# ================================================================================================


class Lookahead:
    """airbench's Lookahead: every 5 steps pull the weights toward a slow EMA copy of themselves."""

    every = 5

    def __init__(self, model: nn.Module) -> None:
        self.ema = {k: v.clone() for k, v in model.state_dict().items()}

    @staticmethod
    def decays(total_steps: int) -> torch.Tensor:
        """EMA decay at each step: 0.95**5 scaled by (step / total)**3, so it ramps up over the run."""
        return 0.95**5 * (torch.arange(total_steps + 1) / max(total_steps, 1)) ** 3

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        for ema, current in zip(self.ema.values(), model.state_dict().values()):
            if current.dtype.is_floating_point:
                ema.lerp_(current, 1 - decay)
                current.copy_(ema)


# ================================================================================================
# Training loop
# ================================================================================================


@dataclass
class _Trainer:
    """The mutable state of one fold's training: what a checkpoint saves and restores."""

    model: nn.Module
    loader: training.Loader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    lookahead: Lookahead | None
    device: torch.device

    def streams(self) -> dict[str, torch.Generator]:
        return {"order": self.loader.order_gen, "aug": self.loader.aug_gen}

    def state(self, next_epoch: int) -> dict:
        return {
            "next_epoch": int(next_epoch),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "lookahead": None if self.lookahead is None else self.lookahead.ema,
            "rng": checkpoints.rng_state(self.streams(), self.device),
        }

    def restore(self, state: dict) -> int:
        """Loads a checkpoint's state; returns the next epoch to train."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.lookahead is not None:
            self.lookahead.ema = {k: v.to(self.device) for k, v in state["lookahead"].items()}
        checkpoints.restore_rng(state["rng"], self.streams(), self.device)
        return int(state["next_epoch"])


@dataclass
class Fitted:
    """What :func:`fit` did: where it started and how long each epoch it trained took."""

    start_epoch: int
    epoch_times_s: list[float]


def fit(
    model: nn.Module,
    loader: training.Loader,
    recipe: Recipe,
    device: torch.device,
    *,
    precision: str,
    compiled: bool,
    resume: dict | None,
    save: Callable[[dict], None] | None,
    progress: bool,
    desc: str,
) -> Fitted:
    """Trains ``model`` in place for ``recipe.epochs`` epochs over ``loader``.

    Args:
        precision: ``fp32`` or ``bf16`` (autocast on CUDA).
        compiled: Run the network's forward and backward through ``torch.compile``.
        resume: A checkpoint's training state (``_Trainer.state``) to continue from.
        save: Receives the training state after every ``recipe.checkpoint_every``-th
            epoch (not after the last: the fold's output follows at once).

    Returns:
        The epoch training started at (0, or the resumed checkpoint's) and the wall time of each
        epoch trained (the first includes compiling, when compiled).
    """
    optimizer = make_optimizer(model, recipe)
    steps_per_epoch = len(loader)
    total_steps = recipe.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_schedule(recipe, total_steps, steps_per_epoch)
    )
    lookahead = Lookahead(model) if recipe.lookahead else None
    decays = Lookahead.decays(total_steps)
    trainer = _Trainer(model, loader, optimizer, scheduler, lookahead, device)
    reduction = "sum" if recipe.schedule == "airbench" else "mean"  # airbench's lr is per summed example
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing, reduction=reduction)
    if compiled:
        training.use_compile_cache()  # one on-disk cache for every task: compile once per machine
    forward = torch.compile(model) if compiled else model  # same parameters; state_dict stays the model's
    start_epoch = 0 if resume is None else trainer.restore(resume)
    step = start_epoch * steps_per_epoch
    bar = tqdm(total=total_steps, initial=step, desc=desc, disable=not progress, unit="step")
    epoch_times = []
    for epoch in range(start_epoch, recipe.epochs):
        epoch_start = time.perf_counter()
        model.train()
        if isinstance(model, AirbenchNet):
            model.whiten.bias.requires_grad = epoch < recipe.whiten_bias_epochs
        for x, y, _ in loader:
            with training.autocast(device, precision):
                loss = loss_fn(forward(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if lookahead is not None and step % Lookahead.every == 0:
                lookahead.update(model, decay=float(decays[step]))
            bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")  # .item() waits for the GPU
        epoch_times.append(time.perf_counter() - epoch_start)
        done = epoch + 1
        if (
            save is not None
            and recipe.checkpoint_every
            and done % recipe.checkpoint_every == 0
            and done < recipe.epochs
        ):
            save(trainer.state(done))
    if lookahead is not None:
        lookahead.update(model, decay=1.0)
    bar.close()
    return Fitted(start_epoch, epoch_times)


# ================================================================================================
# Settings and checkpoints
# ================================================================================================


def run_settings(
    recipe: Recipe,
    *,
    arch: str,
    fold: int,
    n_folds: int,
    seed: int,
    fold_split: str,
    images: training.Pixels,
    labels: np.ndarray,
    stratify_labels: np.ndarray,
    num_classes: int,
    normalisation: training.Normalisation,
    device: torch.device,
) -> dict:
    """Everything that determines a fold's result; a checkpoint resumes only if these match.

    ``checkpoint_every`` is left out: it changes when state is saved, not what is computed.
    """
    return {
        "recipe": {k: v for k, v in dataclasses.asdict(recipe).items() if k != "checkpoint_every"},
        "arch": arch,
        "fold": fold,
        "n_folds": n_folds,
        "seed": seed,
        "fold_split": fold_split,
        "num_classes": int(num_classes),
        "n_examples": len(labels),
        "labels": fingerprint(labels),
        "stratify_labels": fingerprint(stratify_labels),
        "images": checkpoints.image_fingerprint(images),
        "normalisation": [list(normalisation[0]), list(normalisation[1])],
        "device_type": device.type,
    }


def load_checkpoint(data: bytes, source: str) -> dict:
    """Parses a fold ``checkpoint.pt`` (tensors and plain types only; never unpickles code)."""
    return checkpoints.load(data, source, kind=CHECKPOINT_KIND, version=CHECKPOINT_FORMAT)


# ================================================================================================
# Entry point
# ================================================================================================


def train_fold(
    images: training.Pixels,
    labels: np.ndarray,
    *,
    fold: int,
    n_folds: int,
    seed: int,
    arch: str,
    fold_split: str,
    recipe: Recipe | None = None,
    stratify_labels: np.ndarray | None = None,
    num_classes: int | None = None,
    classes: Sequence[str] | None = None,
    normalisation: training.Normalisation | None = None,
    device: torch.device | None = None,
    resume: dict | None = None,
    resume_source: str = "checkpoint",
    write_checkpoint: Callable[[bytes], None] | None = None,
    progress: bool,
) -> FoldResult:
    """Trains fold ``fold`` of a ``n_folds``-fold split and predicts its held-out rows.

    The defaults of the settings live in :func:`.stage.fold_train`, the stage's entry point.

    Args:
        images: (N, R, R, 3) uint8 train images, ImageFolder order (R = 32 for CIFAR-10; the
            airbench networks need 32, the ResNets take any R), in memory or streamed from packed
            shards (:class:`~..common.shards.ShardImages`: a split larger than memory).
        labels: (N,) int given (possibly noisy) labels; the model trains on these.
        fold: Which fold to hold out, 0 <= fold < n_folds.
        n_folds: K of the K-fold split (the paper: 4).
        seed: Seeds the split, the network init, the batch order and the augmentation.
        arch: One of :data:`~.recipes.NETWORKS`.
        fold_split: Split rule, one of :data:`~.folds.FOLD_SPLITS`.
        recipe: Hyperparameters (default: the arch's recipe).
        stratify_labels: Labels the split is stratified by (default ``labels``).
        num_classes: K (default: ``labels.max() + 1``).
        classes: The K class names, named in errors (default: class ids).
        normalisation: Per-channel (mean, std) of the inputs (default: CIFAR-10's, the seed's;
            :func:`~..common.training.input_normalisation`).
        device: Where to train (default: the GPU when there is one).
        resume: A checkpoint (:func:`load_checkpoint`) to continue from; its settings must
            equal this run's (:func:`run_settings`).
        resume_source: Name of the checkpoint in error messages.
        write_checkpoint: Receives the checkpoint bytes every ``recipe.checkpoint_every`` epochs.
        progress: Show a progress bar.

    Returns:
        The held-out rows, their softmax probabilities and given labels, and metrics.
    """
    start = time.perf_counter()
    if not 0 <= fold < n_folds:
        raise InputError("fold", "", f"must lie in [0, {n_folds}), got {fold}")
    device = device or training.select_device("auto")
    recipe = recipe or resolve_recipe(arch)
    precision = recipe.precision if device.type == "cuda" else "fp32"  # the CPU computes in fp32
    compiled = recipe.compile == "on" or (recipe.compile == "cuda" and device.type == "cuda")
    num_classes = num_classes or int(labels.max()) + 1
    mean, std = training.input_normalisation(normalisation)
    stratify = labels if stratify_labels is None else stratify_labels
    heldout = fold_indices(stratify, n_folds, seed, split=fold_split, classes=classes)[fold]
    settings = run_settings(
        recipe,
        arch=arch,
        fold=fold,
        n_folds=n_folds,
        seed=seed,
        fold_split=fold_split,
        images=images,
        labels=labels,
        stratify_labels=stratify,
        num_classes=num_classes,
        normalisation=(mean, std),
        device=device,
    )
    if resume is not None:
        checkpoints.check_resume(resume["settings"], settings, resume_source)
        log.info("resuming from %s at epoch %d", resume_source, resume["next_epoch"])
    train_rows = np.setdiff1d(np.arange(len(labels)), heldout)
    fold_seed = seed * 1000 + fold  # one stream per fold, so folds can run in any order
    training.seed_everything(fold_seed, device, precision)
    model = build_model(arch, num_classes)
    augment = training.Augment(pad=recipe.pad, flip=True, pad_mode=recipe.pad_mode)
    loader = training.make_loader(
        images[train_rows],
        labels[train_rows],
        batch_size=recipe.batch_size,
        device=device,
        shuffle=True,
        drop_last=False,
        augment=augment,
        mean=mean,
        std=std,
        order_seed=fold_seed + 1,
        aug_seed=fold_seed + 2,
        dtype=training.input_dtype(device, precision),
    )
    model = training.to_device(model, device)
    if isinstance(model, AirbenchNet):
        model.init_whitening(loader.head(5000).to(device).float())

    def save(state: dict) -> None:
        write_checkpoint(
            checkpoints.to_bytes(
                {"settings": settings, **state}, kind=CHECKPOINT_KIND, version=CHECKPOINT_FORMAT
            )
        )

    train_start = time.perf_counter()
    fitted = fit(
        model,
        loader,
        recipe,
        device,
        precision=precision,
        compiled=compiled,
        resume=resume,
        save=save if write_checkpoint is not None else None,
        progress=progress,
        desc=f"fold {fold}/{n_folds}",
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_time = time.perf_counter() - train_start
    # The seed scored a deep copy of its training set: each held-out image once through the
    # training transform. Its own stream, so it does not depend on how training went.
    eval_loader = training.make_loader(
        images[heldout],
        labels[heldout],
        batch_size=1024,
        device=device,
        shuffle=False,
        mean=mean,
        std=std,
        augment=augment if recipe.holdout_transform == "train" else None,
        aug_seed=fold_seed + 3,
        dtype=training.input_dtype(device, precision),
    )
    pred_probs = training.predict_proba(model, eval_loader, tta_flip=recipe.tta, precision=precision)
    accuracy = float((pred_probs.argmax(1) == labels[heldout]).mean())
    images_seen = (recipe.epochs - fitted.start_epoch) * len(train_rows)
    metrics = {
        "stage": "fold-train",
        "fold": fold,
        "n_folds": n_folds,
        "seed": seed,
        "fold_split": fold_split,
        "n_examples": len(labels),
        "n_train": len(train_rows),
        "n_heldout": len(heldout),
        "n_classes": num_classes,
        "resolution": int(images.shape[1]),
        "streamed": isinstance(loader, training.StreamLoader),  # from packed shards, batch by batch
        "normalisation": {"mean": list(mean), "std": list(std)},
        "arch": arch,
        "recipe": dataclasses.asdict(recipe),
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "precision": precision,
        "compiled": compiled,
        "resumed_at_epoch": None if resume is None else fitted.start_epoch,
        "holdout_accuracy": accuracy,
        "train_time_s": train_time,
        "epoch_times_s": fitted.epoch_times_s,
        "total_time_s": time.perf_counter() - start,
        "images_per_s": images_seen / train_time if train_time > 0 and images_seen else None,
        "device": training.device_name(device),
        "torch_version": torch.__version__,
        "labels_fingerprint": fingerprint(labels),
    }
    log.info(
        "fold %d/%d: held-out accuracy vs given labels %.4f, %.1f s training (%.0f images/s)",
        fold,
        n_folds,
        accuracy,
        train_time,
        metrics["images_per_s"] or 0,
    )
    return FoldResult(heldout.astype(np.int64), pred_probs, labels[heldout].astype(np.int64), metrics)
