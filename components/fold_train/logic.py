"""Fold trainer: train on K-1 folds, predict the held-out fold (confident learning, step 1).

Confident learning needs *out-of-sample* predicted probabilities for every training
example (cleanlab issues #52, #63): with K-fold cross-validation each example is scored by
a model that never saw it. One call here is one fold task of the pipeline: it trains fold
``k``'s model on the other K-1 folds and returns the softmax probabilities of the held-out
rows. The fold combiner joins the K outputs into the (N, K) ``pred_probs`` matrix.

The split is ``StratifiedKFold(n_splits=K, shuffle=True, random_state=seed)`` as in the
seed (``cifar10_train_crossval.py``), stratified by the given labels by default (all a
real user has) or by the dataset labels (``stratify_by="dataset"``, the seed's choice: for
its noisy CIFAR-10 the folders are the *true* classes).

Differences from the seed, on purpose: the seed kept the checkpoint with the best
*test-set* accuracy for each fold, which selects on the test set; clpipe predicts with the
final model. Two recipes: ``paper`` (the seed's ResNet-50 schedule) and ``airbench``
(airbench94's schedule, ~40x fewer epochs).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from torch import nn
from tqdm.auto import tqdm

from ..common import training
from ..common.errors import InputError
from ..common.checks import fingerprint
from .models import ARCHS, AirbenchNet, build_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """Hyperparameters of one fold's training.

    Attributes:
        epochs: Passes over the K-1 training folds.
        batch_size: Examples per step.
        lr: ``paper``: SGD learning rate. ``airbench``: learning rate per 1024 examples
            with the loss summed over the batch (decoupled as in airbench94).
        momentum, nesterov, weight_decay: SGD settings (``airbench``: weight decay per
            1024 examples, decoupled from the learning rate).
        schedule: ``multistep`` (x0.1 after 150/350 and 250/350 of the epochs, the seed's
            150 and 250 of 350) or ``airbench`` (linear warm-up over 23 % of the steps
            from 0.2 to 1, then linear decay to 0.07).
        label_smoothing: Cross-entropy label smoothing.
        pad, pad_mode: Random-crop padding (the seed: 4, zeros; airbench: 2, reflect).
        tta: Average the predictions of each image and its mirror image.
        lookahead: airbench's Lookahead/EMA of the weights every 5 steps.
        bias_scaler: Learning-rate multiplier for BatchNorm biases (airbench).
        whiten_bias_epochs: Epochs during which the whitening layer's bias trains.
    """

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: str
    label_smoothing: float = 0.0
    pad: int = 4
    pad_mode: str = "constant"
    tta: bool = False
    lookahead: bool = False
    bias_scaler: float = 1.0
    whiten_bias_epochs: int = 0


RECIPES: dict[str, Recipe] = {
    # The seed's cifar10_train_crossval.py (experiments.bash passes no -b, so batch 64).
    "paper": Recipe(epochs=350, batch_size=64, lr=0.1, momentum=0.9, nesterov=False,
                    weight_decay=1e-4, schedule="multistep"),
    # airbench94 (legacy/airbench94.py hyperparameters).
    "airbench": Recipe(epochs=10, batch_size=1024, lr=11.5, momentum=0.85, nesterov=True,
                       weight_decay=0.0153, schedule="airbench", label_smoothing=0.2, pad=2,
                       pad_mode="reflect", tta=True, lookahead=True, bias_scaler=64.0,
                       whiten_bias_epochs=3),
}
DEFAULT_RECIPE = {"resnet50": "paper", "airbench94": "airbench", "airbench-tiny": "airbench"}


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


def fold_indices(stratify_labels: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Held-out rows of each fold: ``StratifiedKFold(n_folds, shuffle=True, random_state=seed)``."""
    if n_folds < 2:
        raise InputError("--n-folds", "", f"must be >= 2, got {n_folds}")
    counts = np.bincount(stratify_labels)
    smallest = counts[counts > 0].min()
    if smallest < n_folds:
        k = int(np.flatnonzero(counts == smallest)[0])
        raise InputError("labels", "", f"class {k} has {counts[k]} examples, fewer than {n_folds} folds")
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(stratify_labels)), stratify_labels)]


def resolve_recipe(arch: str, recipe: str | None = None, **overrides) -> Recipe:
    """The named recipe (default: the one that goes with ``arch``) with non-None overrides."""
    if arch not in ARCHS:
        raise InputError("--arch", "", f"unknown architecture {arch!r}; choose from {ARCHS}")
    name = recipe or DEFAULT_RECIPE[arch]
    if name not in RECIPES:
        raise InputError("--recipe", "", f"unknown recipe {name!r}; choose from {tuple(RECIPES)}")
    base = RECIPES[name]
    if name == "airbench" and arch == "resnet50":
        raise InputError("--recipe", "", "the airbench recipe needs an airbench network")
    chosen = {k: v for k, v in overrides.items() if v is not None}
    for key in ("epochs", "batch_size"):
        if key in chosen and chosen[key] <= 0:
            raise InputError(f"--{key.replace('_', '-')}", "", f"must be > 0, got {chosen[key]}")
    return dataclasses.replace(base, **chosen)


def train_fold(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    fold: int,
    n_folds: int = 4,
    seed: int = 0,
    arch: str = "resnet50",
    recipe: Recipe | None = None,
    stratify_labels: np.ndarray | None = None,
    num_classes: int | None = None,
    device: torch.device | None = None,
    progress: bool = True,
) -> FoldResult:
    """Trains fold ``fold`` of a ``n_folds``-fold split and predicts its held-out rows.

    Args:
        images: (N, 32, 32, 3) uint8 train images, ImageFolder order.
        labels: (N,) int given (possibly noisy) labels; the model trains on these.
        fold: Which fold to hold out, 0 <= fold < n_folds.
        n_folds: K of the K-fold split (the paper: 4).
        seed: Seeds the split, the network init, the batch order and the augmentation.
        arch: One of :data:`models.ARCHS`.
        recipe: Hyperparameters (default: the arch's recipe).
        stratify_labels: Labels the split is stratified by (default ``labels``).
        num_classes: K (default: ``labels.max() + 1``).
        device: Where to train (default: the GPU when there is one).
        progress: Show a progress bar.

    Returns:
        The held-out rows, their softmax probabilities and given labels, and metrics.
    """
    start = time.perf_counter()
    if not 0 <= fold < n_folds:
        raise InputError("--fold", "", f"must lie in [0, {n_folds}), got {fold}")
    device = device or training.select_device("auto")
    recipe = recipe or resolve_recipe(arch)
    num_classes = num_classes or int(labels.max()) + 1
    heldout = fold_indices(labels if stratify_labels is None else stratify_labels, n_folds, seed)[fold]
    train_rows = np.setdiff1d(np.arange(len(labels)), heldout)
    fold_seed = seed * 1000 + fold  # one stream per fold, so folds can run in any order
    training.seed_everything(fold_seed, device)
    model = build_model(arch, num_classes)
    mean, std = training.CIFAR10_MEAN, training.CIFAR10_STD
    loader = training.DeviceLoader(
        images[train_rows], labels[train_rows], batch_size=recipe.batch_size, device=device,
        shuffle=True, drop_last=False,
        augment=training.Augment(pad=recipe.pad, flip=True, pad_mode=recipe.pad_mode),
        mean=mean, std=std, order_seed=fold_seed + 1, aug_seed=fold_seed + 2,
    )
    model = training.to_device(model, device)
    if isinstance(model, AirbenchNet):
        model.init_whitening(loader.x[:5000].to(device).float())
    train_start = time.perf_counter()
    fit(model, loader, recipe, device, progress=progress, desc=f"fold {fold}/{n_folds}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_time = time.perf_counter() - train_start
    eval_loader = training.DeviceLoader(
        images[heldout], labels[heldout], batch_size=1024, device=device, shuffle=False, mean=mean, std=std,
    )
    pred_probs = training.predict_proba(model, eval_loader, tta_flip=recipe.tta)
    accuracy = float((pred_probs.argmax(1) == labels[heldout]).mean())
    images_seen = recipe.epochs * len(train_rows)
    metrics = {
        "stage": "fold-train",
        "fold": fold,
        "n_folds": n_folds,
        "seed": seed,
        "n_examples": int(len(labels)),
        "n_train": int(len(train_rows)),
        "n_heldout": int(len(heldout)),
        "n_classes": num_classes,
        "arch": arch,
        "recipe": dataclasses.asdict(recipe),
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "holdout_accuracy": accuracy,
        "train_time_s": train_time,
        "total_time_s": time.perf_counter() - start,
        "images_per_s": images_seen / train_time if train_time > 0 else None,
        "device": training.device_name(device),
        "torch_version": torch.__version__,
        "labels_fingerprint": fingerprint(labels),
    }
    log.info("fold %d/%d: held-out accuracy vs given labels %.4f, %.1f s training (%.0f images/s)",
             fold, n_folds, accuracy, train_time, metrics["images_per_s"] or 0)
    return FoldResult(heldout.astype(np.int64), pred_probs, labels[heldout].astype(np.int64), metrics)


# --- training loop -----------------------------------------------------------------------

def fit(model: nn.Module, loader: training.DeviceLoader, recipe: Recipe, device: torch.device,
        *, progress: bool = True, desc: str = "train") -> None:
    """Trains ``model`` in place for ``recipe.epochs`` epochs over ``loader``."""
    optimizer = _optimizer(model, recipe)
    total_steps = recipe.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(recipe, total_steps, len(loader)))
    reduction = "sum" if recipe.schedule == "airbench" else "mean"
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing, reduction=reduction)
    lookahead = _Lookahead(model) if recipe.lookahead else None
    alpha = 0.95**5 * (torch.arange(total_steps + 1) / max(total_steps, 1)) ** 3
    step = 0
    bar = tqdm(total=total_steps, desc=desc, disable=not progress, unit="step")
    for epoch in range(recipe.epochs):
        model.train()
        if isinstance(model, AirbenchNet):
            model.whiten.bias.requires_grad = epoch < recipe.whiten_bias_epochs
        for x, y, _ in loader:
            with training.autocast(device):
                loss = loss_fn(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if lookahead is not None and step % 5 == 0:
                lookahead.update(model, decay=float(alpha[step]))
            bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    if lookahead is not None:
        lookahead.update(model, decay=1.0)
    bar.close()


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.schedule != "airbench":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    # airbench94: hyperparameters are given per 1024 examples with a summed loss; convert
    # them to PyTorch's coupled SGD (weight decay is divided by the lr it is multiplied by).
    kilostep_scale = 1024 * (1 + 1 / (1 - recipe.momentum))
    lr = recipe.lr / kilostep_scale
    wd = recipe.weight_decay * recipe.batch_size / kilostep_scale
    lr_biases = lr * recipe.bias_scaler
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad or name == "whiten.bias"]
    norm_biases = [p for name, p in trainable if "norm" in name]
    others = [p for name, p in trainable if "norm" not in name]
    return torch.optim.SGD(
        [dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
         dict(params=others, lr=lr, weight_decay=wd / lr)],
        momentum=recipe.momentum, nesterov=recipe.nesterov,
    )


def _schedule(recipe: Recipe, total_steps: int, steps_per_epoch: int):
    """Multiplier of the base learning rate at each step."""
    if recipe.schedule == "multistep":
        milestones = [round(recipe.epochs * 150 / 350) * steps_per_epoch, round(recipe.epochs * 250 / 350) * steps_per_epoch]
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
    raise InputError("--recipe", "schedule", f"unknown schedule {recipe.schedule!r}")


class _Lookahead:
    """airbench's Lookahead: pull the weights toward a slow EMA copy every few steps."""

    def __init__(self, model: nn.Module) -> None:
        self.ema = {k: v.clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        for ema, current in zip(self.ema.values(), model.state_dict().values()):
            if current.dtype.is_floating_point:
                ema.lerp_(current, 1 - decay)
                current.copy_(ema)
