"""Co-Teaching on the examples confident learning kept (the paper's CIFAR-10 step 3).

Vocabulary (docs/architecture.md): the train *view* has N rows in ImageFolder order, K
classes; ``keep`` is a bool (N,) mask, True = train on the row (a make-masks
``train_mask.npy``); no mask = plain Co-Teaching on every noisy label (method ``none``).
Epochs are numbered as in the official loops: epoch ``e`` uses entry ``e`` of every
schedule, and a recipe trains epochs ``first_epoch .. epochs - 1`` (the Feb-2020 and 2018
code spend epoch 0 evaluating the random init, so ``epochs=250`` trains 249 epochs).

Co-Teaching (Han et al. 2018; notes ``confident-learning.md`` §5): two networks see the
same batch; each ranks it by its own per-sample (class-weighted) cross-entropy and keeps
its ``int((1 - forget_rate) * B)`` smallest-loss samples; **net 1 is updated on net 2's
selection and net 2 on net 1's**. One named function per trick, in reading order:
:func:`forget_rate_schedule`, :func:`lr_beta1_schedule`, :func:`adjust_optimizer`,
:func:`class_weights`, :func:`num_remember`, :func:`select_small_loss`,
:func:`coteaching_loss`, then the loop (:func:`train_epoch`, :func:`evaluate`,
:func:`train_coteaching`).

Recipes (:data:`RECIPES`, flags override fields):

- ``feb2020`` (default): the single-trial protocol behind the Feb-2020 Table 2 (arXiv v1-v3),
  ``confidentlearning_and_coteaching/main.py``.
- ``jair2021``: the JAIR 10-trial protocol (``cifar10_train_crossval.py --coteaching`` with
  cleanlab ~d941d19f); its forget rate is noise/2 and must be given.
- ``coteaching2018``: bhanML/Co-teaching's CIFAR-10 settings (200 epochs, no augmentation,
  no class weights), the paper's Co-Teaching baseline row.

Class weights: the paper's rules use the dataset's **true** labels (for the seed's noisy
CIFAR-10 the class folders are the ground truth), i.e. they leak the noise rates of the
kept set into training. They are implemented faithfully for reproduction and named as
such (``feb2020``, ``jair2021``); ``given`` is the same idea from the given labels only
(no leak), ``none`` switches weighting off.

Bit-for-bit: on the CPU two runs with the same inputs and seed give identical curves, and
a run resumed from its checkpoint gives the same curves as an uninterrupted one. On CUDA
(bf16 autocast, cuDNN autotuning) runs are close but not bit-identical.

Where this differs from the official code, and why:

- The whole (possibly subset) test set is scored; the official test loaders use
  ``drop_last=True`` (9,984 of 10,000 images). The shared test set is partly a JPEG
  re-encoding, so the accuracy on its exact rows is reported alongside.
- The official epoch 0 only evaluates the random init; that evaluation is skipped (nothing
  is reported from it) -- the schedules still start at index ``first_epoch``.
- Ties in the small-loss ranking are broken by a stable sort (official: numpy quicksort);
  ``num_remember`` is at least 1 (official: an empty selection gives a NaN loss).
- Batches, crops and flips are drawn on the device from clpipe's own seeded streams, so no
  run repeats the official random numbers; on CUDA the networks run in bf16 autocast and
  channels_last (official: fp32).
- Without a mask no class weights are used (the JAIR driver; the Feb-2020 code always had a
  mask, and its rule would give all ones).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..common import training
from ..common.errors import InputError
from ..common.methods import RUN_METHODS
from .model import build_pair

log = logging.getLogger(__name__)

#: Method ids of make-masks (the seed's folder names) plus ``none`` = no pruning.
METHODS = RUN_METHODS
#: Class-weight rules (see :func:`class_weights`).
CLASS_WEIGHT_RULES = ("feb2020", "jair2021", "given", "none")
#: Version of the checkpoint layout.
CHECKPOINT_FORMAT = 1


# ================================================================================================
# Hyperparameters
# ================================================================================================

@dataclass(frozen=True)
class Recipe:
    """Hyperparameters of one Co-Teaching run (defaults = ``feb2020``, the paper's Table 2 run).

    Attributes:
        epochs: Schedule length E (the official ``n_epoch``); epochs ``first_epoch .. E-1``
            are trained. The lr decay is relative to E.
        first_epoch: Schedule index of the first trained epoch: 1 where the official loop
            spends epoch 0 evaluating the random init (Feb-2020, 2018), 0 for JAIR.
        batch_size: Examples per step (both networks see the same batch).
        lr: Adam learning rate before the decay.
        epoch_decay_start: From this epoch on, lr = ``lr * (E - e) / (E - start)`` and
            Adam's beta1 = ``mom2``.
        mom1, mom2: Adam beta1 before / from ``epoch_decay_start`` (beta2 stays 0.999).
        forget_rate: Final fraction of each batch dropped as presumed noise, in [0, 1);
            None = must be given (JAIR: noise / 2).
        num_gradual: Tk, epochs of the linear forget-rate ramp.
        exponent: c, the ramp goes to ``forget_rate ** c``.
        class_weights: Rule of :func:`class_weights`.
        double_normalise: Divide the (weighted mean) update loss again by ``num_remember``
            as every official implementation does (harmless under Adam; see notes §5b).
        augment: RandomCrop(32, padding 4, zeros) + RandomHorizontalFlip on the train set.
        normalize: Per-channel CIFAR-10 normalisation (train and test).
        drop_last: Skip the last incomplete batch of each epoch (all official loaders do).
        min_last_batch: Also skip a last batch smaller than this (JAIR: 16).
        cnn_width: Base width of :class:`~.model.CoTeachingCNN` (paper: 128).
        dropout: Channel dropout after each pooling (paper: 0.25).
        eval_dropout: Keep dropout on when scoring the test set (official code: yes).
        tta_flip: Score each test image as the mean of its own and its mirror image's
            logits (test-time augmentation, airbench; evaluation only, training unchanged).
    """

    epochs: int = 250
    first_epoch: int = 1
    batch_size: int = 128
    lr: float = 1e-3
    epoch_decay_start: int = 80
    mom1: float = 0.9
    mom2: float = 0.1
    forget_rate: float | None = 0.2
    num_gradual: int = 10
    exponent: float = 1.0
    class_weights: str = "feb2020"
    double_normalise: bool = True
    augment: bool = True
    normalize: bool = False
    drop_last: bool = True
    min_last_batch: int = 1
    cnn_width: int = 128
    dropout: float = 0.25
    eval_dropout: bool = True
    tta_flip: bool = False


RECIPES: dict[str, Recipe] = {
    # --- Feb-2020 single trial (notes §5a): confidentlearning_and_coteaching/main.py ---------
    "feb2020": Recipe(
        epochs=250,             # forced for CIFAR-10; the loop trains epochs 1..249
        first_epoch=1,          # epoch 0 only evaluates the random init
        batch_size=128,
        lr=1e-3,                # Adam; constant until epoch 80, then linear to lr/170 at 249
        epoch_decay_start=80,
        mom1=0.9, mom2=0.1,     # beta1 0.9 -> 0.1 from epoch 80
        forget_rate=0.2,        # --forget_rate unset -> noise_rate default 0.2, every noise level
        num_gradual=10, exponent=1.0,
        class_weights="feb2020",  # 5000 / bincount(TRUE labels of the kept rows)
        augment=True, normalize=False,  # crop+flip, ToTensor only
        drop_last=True,
    ),
    # --- JAIR 10 trials (notes §5b): cifar10_train_crossval.py --coteaching ------------------
    "jair2021": Recipe(
        epochs=350, first_epoch=0,
        batch_size=128,         # 128 / 256 / 450 per cell in batch_sizes_df.p: pass --batch-size
        lr=1e-3, epoch_decay_start=80,
        mom1=0.9, mom2=0.9,     # cleanlab d941d19f: no beta1 drop ("original author had 0.1")
        forget_rate=None,       # noise / 2: 0.1, 0.2, 0.3 -- must be given
        num_gradual=10, exponent=1.0,
        class_weights="jair2021",  # bincount(TRUE labels, all) / bincount(GIVEN labels, kept)
        augment=True, normalize=True,
        drop_last=True, min_last_batch=16,
    ),
    # --- bhanML/Co-teaching main.py (notes §5c), the paper's Co-Teaching baseline -------------
    "coteaching2018": Recipe(
        epochs=200, first_epoch=1,
        batch_size=128, lr=1e-3, epoch_decay_start=80, mom1=0.9, mom2=0.1,
        forget_rate=0.2, num_gradual=10, exponent=1.0,
        class_weights="none",
        augment=False, normalize=False,
        drop_last=True,
    ),
    # --- clpipe's fast preset (pipelines/configs/table2-fast.yaml) ------------------------------
    # The Feb-2020 Co-Teaching compressed for one GPU, with airbench's lessons applied where
    # they do not change the method: same CNN, same exchange of small-loss samples, same
    # forget-rate ramp and Adam lr/beta1 plan, scaled to 30 epochs (decay from epoch 10 as 80
    # is of 250; a 5-epoch ramp); larger batches (256) with a square-root-scaled lr for GPU
    # throughput; normalised inputs; deterministic evaluation (dropout off) with mirror TTA.
    # NOT yet validated on a GPU against the paper's numbers: see docs/reproduction.md.
    "fast": Recipe(
        epochs=30, first_epoch=0,
        batch_size=256, lr=1.4e-3,
        epoch_decay_start=10, mom1=0.9, mom2=0.1,
        forget_rate=0.2, num_gradual=5, exponent=1.0,
        class_weights="feb2020",
        augment=True, normalize=True,
        drop_last=True,
        eval_dropout=False, tta_flip=True,
    ),
}
DEFAULT_RECIPE = "feb2020"


def resolve_recipe(name: str = DEFAULT_RECIPE, **overrides) -> Recipe:
    """The named recipe with the non-None ``overrides`` (flag values) applied and checked."""
    if name not in RECIPES:
        raise InputError("--recipe", "", f"unknown recipe {name!r}; choose from {tuple(RECIPES)}")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown recipe fields {sorted(unknown)}")
    recipe = dataclasses.replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})
    check_recipe(recipe, name)
    return recipe


def check_recipe(recipe: Recipe, name: str = "recipe") -> None:
    """Raises :class:`InputError` (naming the flag) for values the loop cannot run with."""
    fr = recipe.forget_rate
    if fr is None:
        raise InputError("--forget-rate", "", f"recipe {name} has no default forget rate; give one "
                         "(JAIR: noise / 2, i.e. 0.1, 0.2 or 0.3)")
    if not (0.0 <= fr < 1.0) or math.isnan(fr):
        raise InputError("--forget-rate", "", f"must lie in [0, 1), got {fr}")
    checks = [
        ("--epochs", recipe.epochs > recipe.first_epoch,
         f"must exceed the first trained epoch {recipe.first_epoch}, got {recipe.epochs}"),
        ("--batch-size", recipe.batch_size > 0, f"must be > 0, got {recipe.batch_size}"),
        ("--lr", recipe.lr > 0 and math.isfinite(recipe.lr), f"must be > 0, got {recipe.lr}"),
        ("--num-gradual", recipe.num_gradual >= 0, f"must be >= 0, got {recipe.num_gradual}"),
        ("--epoch-decay-start", recipe.epoch_decay_start >= 0,
         f"must be >= 0, got {recipe.epoch_decay_start}"),
        ("--mom2", 0.0 <= recipe.mom2 < 1.0, f"must lie in [0, 1), got {recipe.mom2}"),
        ("--cnn-width", recipe.cnn_width >= 1, f"must be >= 1, got {recipe.cnn_width}"),
        ("--class-weights", recipe.class_weights in CLASS_WEIGHT_RULES,
         f"unknown rule {recipe.class_weights!r}; choose from {CLASS_WEIGHT_RULES}"),
    ]
    for flag, ok, problem in checks:
        if not ok:
            raise InputError(flag, "", problem)


# ================================================================================================
# The Co-Teaching tricks, one function each
# ================================================================================================

def forget_rate_schedule(
    epochs: int, forget_rate: float, num_gradual: int = 10, exponent: float = 1.0
) -> np.ndarray:
    """(E,) fraction of each batch to forget at epoch e.

    ``linspace(0, forget_rate ** exponent, num_gradual)`` for the first ``num_gradual``
    epochs, then ``forget_rate`` (Co-Teaching's R(T); official ``rate_schedule``). For
    ``epochs < num_gradual`` the ramp is cut short, as it would be by the slice.
    """
    schedule = np.ones(epochs) * forget_rate
    ramp = np.linspace(0, forget_rate**exponent, num_gradual)
    schedule[:num_gradual] = ramp[: min(num_gradual, epochs)]
    return schedule


def lr_beta1_schedule(
    epochs: int, lr: float, epoch_decay_start: int = 80, mom1: float = 0.9, mom2: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """(E,) learning rates and (E,) Adam beta1 values, indexed by epoch.

    lr is constant before ``epoch_decay_start`` and ``(E - e) / (E - start) * lr`` from
    there (so epoch ``start`` still has the full lr and the last epoch lr / (E - start));
    beta1 is ``mom1`` before and ``mom2`` from ``epoch_decay_start`` (official
    ``alpha_plan`` / ``beta1_plan``, same float arithmetic).
    """
    alpha_plan = [lr] * epochs
    beta1_plan = [mom1] * epochs
    for i in range(epoch_decay_start, epochs):
        alpha_plan[i] = float(epochs - i) / (epochs - epoch_decay_start) * lr
        beta1_plan[i] = mom2
    return np.array(alpha_plan, dtype=np.float64), np.array(beta1_plan, dtype=np.float64)


def adjust_optimizer(optimizer: torch.optim.Optimizer, lr: float, beta1: float) -> None:
    """Sets one epoch's learning rate and Adam beta1 (beta2 stays 0.999), as the official code."""
    for group in optimizer.param_groups:
        group["lr"] = float(lr)
        group["betas"] = (float(beta1), 0.999)


def class_weights(
    rule: str,
    given_labels: np.ndarray,
    keep: np.ndarray | None,
    *,
    num_classes: int,
    true_labels: np.ndarray | None = None,
    source: str = "train_mask",
) -> np.ndarray | None:
    """(K,) float32 per-class loss weights, or None for ``rule="none"``.

    Rules (numerator over the whole train view, denominator over the kept rows):

    - ``feb2020``: ``bincount(true) / bincount(true[keep])`` -- the Feb-2020 code
      (``5000 / count of kept rows whose TRUE class is k``). Uses ground truth.
    - ``jair2021``: ``bincount(true) / bincount(given[keep])`` -- the JAIR driver. Uses
      ground truth in the numerator.
    - ``given``: ``bincount(given) / bincount(given[keep])`` -- the same correction from the
      given labels only (no leak).
    - ``none``: no weighting.

    Without a mask (``keep=None``, method ``none``) there is nothing to correct for and no
    rule weights the loss (the JAIR driver computes weights only when given a mask; the
    Feb-2020 rule would give all ones).

    The weight of class k multiplies the loss of samples whose *given* label is k. A class
    whose denominator is 0 gets weight 0 when no kept row is given that label (it never
    occurs as a target); otherwise the weights are undefined and an :class:`InputError`
    naming ``source`` is raised.
    """
    if rule == "none":
        return None
    if rule not in CLASS_WEIGHT_RULES:
        raise InputError("--class-weights", "", f"unknown rule {rule!r}; choose from {CLASS_WEIGHT_RULES}")
    if keep is None:
        return None
    if rule in ("feb2020", "jair2021") and true_labels is None:
        raise InputError("--class-weights", "", f"rule {rule} needs the dataset's (true) labels")
    numerator_labels = given_labels if rule == "given" else true_labels
    denominator_labels = true_labels if rule == "feb2020" else given_labels
    numerator = np.bincount(numerator_labels, minlength=num_classes).astype(np.float64)
    denominator = np.bincount(denominator_labels[keep], minlength=num_classes).astype(np.float64)
    used = np.bincount(given_labels[keep], minlength=num_classes) > 0
    undefined = np.flatnonzero((denominator == 0) & used)
    if len(undefined):
        k = int(undefined[0])
        raise InputError(source, "class weights", f"rule {rule}: no kept example counts for class {k} "
                         f"but {int(np.sum(given_labels[keep] == k))} kept rows are given label {k}; "
                         "use --class-weights given or none")
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(denominator > 0, numerator / np.maximum(denominator, 1), 0.0)
    return weights.astype(np.float32)


def num_remember(batch_size: int, forget_rate: float) -> int:
    """Samples each network keeps: ``int((1 - forget_rate) * B)`` (at least 1)."""
    return max(1, int((1 - forget_rate) * batch_size))


def select_small_loss(per_sample_loss: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Indices of the ``n_keep`` smallest losses (stable order, so ties are repeatable)."""
    return torch.argsort(per_sample_loss.detach(), stable=True)[:n_keep]


def coteaching_loss(
    logits1: torch.Tensor,
    logits2: torch.Tensor,
    targets: torch.Tensor,
    forget_rate: float,
    *,
    weights: torch.Tensor | None = None,
    double_normalise: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exchanged small-loss updates of one batch.

    Args:
        logits1, logits2: (B, K) outputs of net 1 and net 2 on the same batch.
        targets: (B,) given labels.
        forget_rate: Fraction of the batch each network drops.
        weights: (K,) class weights or None.
        double_normalise: Divide by ``num_remember`` once more (official code).

    Returns:
        ``(loss1, loss2, picked_by_1, picked_by_2)``: net 1's loss on the samples net 2
        picked and vice versa (the class-weighted mean CE, optionally / num_remember), and
        the indices each network picked by its own per-sample (weighted) loss.
    """
    ce1 = F.cross_entropy(logits1.float(), targets, reduction="none")
    ce2 = F.cross_entropy(logits2.float(), targets, reduction="none")
    w = weights[targets] if weights is not None else None
    rank1 = ce1 * w if w is not None else ce1  # = F.cross_entropy(..., weight=w, reduce=False)
    rank2 = ce2 * w if w is not None else ce2
    n_keep = num_remember(len(targets), forget_rate)
    picked_by_1 = select_small_loss(rank1, n_keep)
    picked_by_2 = select_small_loss(rank2, n_keep)

    def weighted_mean(ce: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if w is None:
            return ce[rows].mean()
        return (ce[rows] * w[rows]).sum() / w[rows].sum()

    loss1 = weighted_mean(ce1, picked_by_2)  # exchange: net 1 learns from net 2's choice
    loss2 = weighted_mean(ce2, picked_by_1)
    if double_normalise:
        loss1, loss2 = loss1 / n_keep, loss2 / n_keep
    return loss1, loss2, picked_by_1, picked_by_2


# ================================================================================================
# Training loop
# ================================================================================================

@dataclass
class EpochStats:
    train_loss_1: float
    train_loss_2: float
    steps: int
    images: int
    seconds: float


def train_epoch(
    nets: tuple[nn.Module, nn.Module],
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    loader: training.DeviceLoader,
    *,
    forget_rate: float,
    weights: torch.Tensor | None,
    double_normalise: bool,
    bar: tqdm | None = None,
) -> EpochStats:
    """One Co-Teaching epoch over ``loader`` (both networks, every step exchanged).

    ``train_loss_k`` is the mean over steps of net k's class-weighted mean CE on the samples
    its peer picked, before the extra ``1 / num_remember`` (so it reads as a CE).
    """
    start = time.perf_counter()
    net1, net2 = nets
    opt1, opt2 = optimizers
    device = loader.device
    net1.train()
    net2.train()
    sum1 = torch.zeros((), device=device)
    sum2 = torch.zeros((), device=device)
    steps = images = 0
    for x, y, _ in loader:
        with training.autocast(device):
            logits1 = net1(x)
            logits2 = net2(x)
        loss1, loss2, _, _ = coteaching_loss(logits1, logits2, y, forget_rate, weights=weights,
                                             double_normalise=double_normalise)
        opt1.zero_grad(set_to_none=True)
        loss1.backward()
        opt1.step()
        opt2.zero_grad(set_to_none=True)
        loss2.backward()
        opt2.step()
        scale = num_remember(len(y), forget_rate) if double_normalise else 1
        sum1 += loss1.detach() * scale  # no host sync inside the loop
        sum2 += loss2.detach() * scale
        steps += 1
        images += len(y)
        if bar is not None:
            bar.update(1)
    n = max(steps, 1)
    loss_1, loss_2 = (sum1 / n).item(), (sum2 / n).item()
    return EpochStats(loss_1 if steps else math.nan, loss_2 if steps else math.nan, steps, images,
                      time.perf_counter() - start)


@torch.no_grad()
def evaluate(net: nn.Module, loader: training.DeviceLoader, *, tta_flip: bool = False) -> torch.Tensor:
    """(N,) bool: is the network's top-1 prediction right, per test row (``eval()`` mode).

    With the paper's network, dropout stays on, so this is a random draw like the
    official evaluation. ``tta_flip`` scores the mean logits of each image and its mirror.
    """
    net.eval()
    correct = torch.zeros(loader.num_examples, dtype=torch.bool, device=loader.data_device)
    for x, y, rows in loader:
        with training.autocast(loader.device):
            pred = training.tta_logits(net, x, tta_flip).argmax(dim=1)
        correct[rows] = (pred == y).to(correct.device)
    return correct.cpu()


def _accuracy(correct: torch.Tensor, rows: torch.Tensor | None) -> float | None:
    if rows is None:
        return float(correct.double().mean())
    if not len(rows):
        return None
    return float(correct[rows].double().mean())


# ================================================================================================
# Metrics, settings, checkpoints
# ================================================================================================

CURVE_KEYS = ("epoch", "test_acc_1", "test_acc_2", "test_exact_acc_1", "test_exact_acc_2",
              "train_loss_1", "train_loss_2", "forget_rate", "lr", "beta1", "epoch_time_s", "train_time_s")


def fingerprint(*arrays: np.ndarray | None) -> str:
    """Short sha256 of arrays (dtype-normalised), to tell inputs apart on resume."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def image_fingerprint(images: np.ndarray) -> str:
    """Fingerprint of an image array from its shape and ~256 evenly spaced images (cheap)."""
    step = max(1, len(images) // 256)
    return fingerprint(np.asarray(images.shape), images[::step])


def run_settings(
    recipe: Recipe,
    *,
    seed: int,
    num_classes: int,
    given_labels: np.ndarray,
    keep: np.ndarray | None,
    true_labels: np.ndarray | None,
    weights: np.ndarray | None,
    train_images: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    test_exact: np.ndarray | None,
    device: torch.device,
) -> dict:
    """Everything that determines the result; a checkpoint resumes only if these match."""
    return {
        "recipe": dataclasses.asdict(recipe),
        "seed": int(seed),
        "num_classes": int(num_classes),
        "n_view": len(given_labels),
        "n_train": int(len(given_labels) if keep is None else keep.sum()),
        "given_labels": fingerprint(given_labels.astype(np.int64)),
        "keep_mask": fingerprint(keep),
        "true_labels": fingerprint(None if true_labels is None else true_labels.astype(np.int64)),
        "class_weights": None if weights is None else [float(v) for v in weights],
        "train_images": image_fingerprint(train_images),
        "test_images": image_fingerprint(test_images),
        "test_labels": fingerprint(test_labels.astype(np.int64), test_exact),
        "device_type": device.type,
    }


def check_resume(saved: dict, current: dict, source: str) -> None:
    """Raises :class:`InputError` naming every setting that differs from the checkpoint's."""
    diffs = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{key}.{k} (checkpoint {a.get(k)!r}, now {b.get(k)!r})"
                      for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            diffs.append(f"{key} (checkpoint {a!r}, now {b!r})")
    if diffs:
        raise InputError(source, "settings", "the checkpoint was written with different settings: "
                         + "; ".join(diffs) + ". Rerun with the original settings or a new --out")


def summarise(curves: dict[str, list], recipe: Recipe) -> tuple[dict, dict]:
    """``final`` (both nets' max at the last epoch, Feb-2020 rule) and ``best`` (max over epochs)."""
    if not curves["epoch"]:
        return {"test_acc": None, "test_exact_acc": None, "epoch": None}, \
               {"test_acc": None, "test_exact_acc": None, "epoch": None, "net": None,
                "selected_on": "test set"}

    def best_of(values: list) -> float | None:
        values = [v for v in values if v is not None]
        return max(values) if values else None

    final = {
        "test_acc": max(curves["test_acc_1"][-1], curves["test_acc_2"][-1]),
        "test_exact_acc": best_of([curves["test_exact_acc_1"][-1], curves["test_exact_acc_2"][-1]]),
        "epoch": curves["epoch"][-1],
    }
    best_acc, best_i, best_net = -1.0, 0, 1
    for i in range(len(curves["epoch"])):
        for net in (1, 2):
            acc = curves[f"test_acc_{net}"][i]
            if acc > best_acc:
                best_acc, best_i, best_net = acc, i, net
    best = {
        "test_acc": best_acc,
        "epoch": curves["epoch"][best_i],
        "net": best_net,
        "test_exact_acc": curves[f"test_exact_acc_{best_net}"][best_i],  # same net and epoch
        "selected_on": "test set",
        "note": "best epoch and net selected on the test set (the JAIR reporting rule; optimistic)",
    }
    return final, best


@dataclass
class CoTeachResult:
    """What :func:`train_coteaching` returns: the metrics (contract of docs/architecture.md)
    and the two trained networks."""

    metrics: dict
    nets: tuple[nn.Module, nn.Module]


def checkpoint_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_checkpoint(data: bytes, source: str) -> dict:
    """Parses a ``checkpoint.pt`` (tensors and plain types only; never unpickles code)."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable content is bad input
        raise InputError(source, "", f"not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(source, "format",
                         f"expected a clpipe coteach checkpoint of format {CHECKPOINT_FORMAT}")
    return state


# ================================================================================================
# Entry point
# ================================================================================================

def train_coteaching(
    train_images: np.ndarray,
    given_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    keep: np.ndarray | None = None,
    true_labels: np.ndarray | None = None,
    test_exact: np.ndarray | None = None,
    recipe: Recipe | None = None,
    seed: int = 1,
    num_classes: int | None = None,
    device: torch.device | None = None,
    resume: dict | None = None,
    resume_source: str = "checkpoint",
    write_checkpoint: Callable[[bytes], None] | None = None,
    write_metrics: Callable[[dict], None] | None = None,
    checkpoint_every: int = 1,
    stop_after: int | None = None,
    metadata: dict | None = None,
    progress: bool = True,
) -> CoTeachResult:
    """Trains two Co-Teaching networks on the kept rows and scores them on the test set each epoch.

    Args:
        train_images: (N, 32, 32, 3) uint8 train view, ImageFolder order.
        given_labels: (N,) int given (noisy) labels; the networks train on these.
        test_images: (M, 32, 32, 3) uint8 test images.
        test_labels: (M,) int test labels.
        keep: (N,) bool, True = train on the row; None = all rows (plain Co-Teaching).
        true_labels: (N,) int dataset labels (ground truth for the seed's CIFAR-10); only
            the ``feb2020``/``jair2021`` class-weight rules read them.
        test_exact: (M,) bool rows with the official pixels (``Split.exact``) or None
            (then the exact-subset accuracies are None).
        recipe: Hyperparameters (default ``feb2020``).
        seed: Seeds the init (:func:`~.model.build_pair`), batch order, augmentation and
            dropout, each from its own stream.
        num_classes: K (default ``max label + 1``).
        device: Where to train (default: the GPU when there is one).
        resume: A checkpoint dict (:func:`load_checkpoint`) to continue from; its settings
            must equal this run's (:func:`check_resume`).
        resume_source: Name of the checkpoint in error messages.
        write_checkpoint: Receives the checkpoint bytes every ``checkpoint_every`` epochs
            and after the last epoch (called before ``write_metrics``).
        write_metrics: Receives the metrics dict after every epoch.
        checkpoint_every: Epochs between checkpoints.
        stop_after: Stop (cleanly, after checkpointing) once this many epochs are done in
            total -- for time-boxed jobs; a rerun continues.
        metadata: Extra keys for the metrics (dataset URLs, method, ...).
        progress: tqdm progress bar over the steps.

    Returns:
        The metrics (``complete`` False if stopped early) and the two networks.
    """
    setup_start = time.perf_counter()
    recipe = recipe or resolve_recipe(DEFAULT_RECIPE)
    check_recipe(recipe)
    device = device or training.select_device("auto")
    given_labels = np.asarray(given_labels, dtype=np.int64)
    test_labels = np.asarray(test_labels, dtype=np.int64)
    num_classes = num_classes or int(max(given_labels.max(), test_labels.max())) + 1
    _check_arrays(train_images, given_labels, test_images, test_labels, true_labels, test_exact)
    if keep is not None:
        keep = check_keep_mask(keep, len(given_labels), "keep", recipe=recipe)
    if true_labels is not None:
        true_labels = np.asarray(true_labels, dtype=np.int64)
    weights = class_weights(recipe.class_weights, given_labels, keep, num_classes=num_classes,
                            true_labels=true_labels)
    settings = run_settings(
        recipe, seed=seed, num_classes=num_classes, given_labels=given_labels, keep=keep,
        true_labels=true_labels, weights=weights, train_images=train_images, test_images=test_images,
        test_labels=test_labels, test_exact=test_exact, device=device,
    )
    if resume is not None:
        check_resume(resume["settings"], settings, resume_source)

    # --- seeds: one stream per purpose, so a different mask never changes the init --------------
    init_seed, order_seed, aug_seed, run_seed = (int(s.generate_state(1, dtype=np.uint64)[0] % 2**63)
                                                 for s in np.random.SeedSequence(seed).spawn(4))
    training.seed_everything(run_seed, device)  # dropout; deterministic kernels on the CPU

    # --- data on the device ---------------------------------------------------------------------
    rows = np.arange(len(given_labels)) if keep is None else np.flatnonzero(keep)
    mean, std = (training.CIFAR10_MEAN, training.CIFAR10_STD) if recipe.normalize else (None, None)
    train_loader = training.DeviceLoader(
        train_images[rows], given_labels[rows], batch_size=recipe.batch_size, device=device, shuffle=True,
        drop_last=recipe.drop_last, min_last_batch=recipe.min_last_batch,
        augment=training.Augment(pad=4, flip=True) if recipe.augment else None,
        mean=mean, std=std, order_seed=order_seed, aug_seed=aug_seed,
    )
    test_loader = training.DeviceLoader(test_images, test_labels, batch_size=1024, device=device,
                                        shuffle=False, mean=mean, std=std)
    exact_rows = None if test_exact is None else torch.from_numpy(np.flatnonzero(test_exact))
    weights_t = None if weights is None else torch.tensor(weights, device=device)

    # --- networks and optimisers ---------------------------------------------------------------
    nets = build_pair(num_classes, width=recipe.cnn_width, dropout=recipe.dropout,
                      dropout_at_eval=recipe.eval_dropout, seed=init_seed)
    nets = tuple(training.to_device(net, device) for net in nets)
    optimizers = adam_pair(nets, recipe.lr, device)

    forget_rates = forget_rate_schedule(recipe.epochs, recipe.forget_rate, recipe.num_gradual,
                                        recipe.exponent)
    lrs, beta1s = lr_beta1_schedule(recipe.epochs, recipe.lr, recipe.epoch_decay_start, recipe.mom1,
                                    recipe.mom2)

    curves: dict[str, list] = {k: [] for k in CURVE_KEYS}
    start_epoch = recipe.first_epoch
    if resume is not None:
        start_epoch = _restore(resume, nets, optimizers, train_loader, device)
        curves = {k: list(resume["curves"][k]) for k in CURVE_KEYS}
        log.info("resuming from %s at epoch %d (%d epochs done)",
                 resume_source, start_epoch, len(curves["epoch"]))

    meta = {
        "stage": "coteach",
        **(metadata or {}),
        "recipe_params": dataclasses.asdict(recipe),
        "seed": int(seed),
        "epochs": recipe.epochs,
        "first_epoch": recipe.first_epoch,
        "n_view": len(given_labels),
        "n_train": len(rows),
        "n_removed": int(len(given_labels) - len(rows)),
        "n_test": len(test_labels),
        "n_test_exact": None if exact_rows is None else len(exact_rows),
        "n_classes": int(num_classes),
        "class_weights": None if weights is None else [float(v) for v in weights],
        "accuracy_unit": "fraction of test images (0-1)",
        "steps_per_epoch": len(train_loader),
        "device": training.device_name(device),
        "torch_version": str(torch.__version__),
    }
    setup_s = time.perf_counter() - setup_start
    prior_s = float(resume.get("time_s", 0.0)) if resume is not None else 0.0

    def metrics(done: bool) -> dict:
        final, best = summarise(curves, recipe)
        times = curves["epoch_time_s"]
        train_s = sum(curves["train_time_s"])
        train_images_seen = len(times) * len(train_loader) * recipe.batch_size
        return {
            **meta,
            "epochs_done": len(curves["epoch"]),
            "complete": done,
            "curves": curves,
            "final": final,
            "best": best,
            "time_s": prior_s + setup_s + float(sum(times[n_prior:])),
            "epoch_time_s": float(np.mean(times)) if times else None,
            "images_per_s": train_images_seen / train_s if train_s > 0 else None,  # training only
        }

    n_prior = len(curves["epoch"])
    last_epoch = recipe.epochs
    if stop_after is not None:
        last_epoch = min(last_epoch, recipe.first_epoch + max(stop_after, 0))
    todo = range(start_epoch, last_epoch)
    bar = tqdm(total=len(todo) * len(train_loader), desc="coteach", unit="step", disable=not progress)
    for epoch in todo:
        epoch_start = time.perf_counter()
        for opt in optimizers:
            adjust_optimizer(opt, lrs[epoch], beta1s[epoch])
        stats = train_epoch(nets, optimizers, train_loader, forget_rate=float(forget_rates[epoch]),
                            weights=weights_t, double_normalise=recipe.double_normalise, bar=bar)
        correct = [evaluate(net, test_loader, tta_flip=recipe.tta_flip) for net in nets]  # net 1 then net 2, like the official loop
        row = {
            "epoch": epoch,
            "test_acc_1": _accuracy(correct[0], None),
            "test_acc_2": _accuracy(correct[1], None),
            "test_exact_acc_1": None if exact_rows is None else _accuracy(correct[0], exact_rows),
            "test_exact_acc_2": None if exact_rows is None else _accuracy(correct[1], exact_rows),
            "train_loss_1": stats.train_loss_1,
            "train_loss_2": stats.train_loss_2,
            "forget_rate": float(forget_rates[epoch]),
            "lr": float(lrs[epoch]),
            "beta1": float(beta1s[epoch]),
            "epoch_time_s": time.perf_counter() - epoch_start,
            "train_time_s": stats.seconds,
        }
        for key, value in row.items():
            curves[key].append(value)
        bar.set_postfix(epoch=epoch, acc1=f"{row['test_acc_1']:.4f}", acc2=f"{row['test_acc_2']:.4f}")
        log.info("epoch %d (last %d): test acc %.4f / %.4f, train loss %.4f / %.4f, "
                 "forget rate %.3f, lr %.2e, %.1f s",
                 epoch, recipe.epochs - 1, row["test_acc_1"], row["test_acc_2"], row["train_loss_1"],
                 row["train_loss_2"], row["forget_rate"], row["lr"], row["epoch_time_s"])
        is_last = epoch == last_epoch - 1
        due = is_last or (epoch - recipe.first_epoch + 1) % checkpoint_every == 0
        m = metrics(epoch == recipe.epochs - 1)
        if write_checkpoint is not None and due:
            state = _checkpoint(settings, epoch + 1, nets, optimizers, train_loader, curves, device, m["time_s"])
            write_checkpoint(checkpoint_bytes(state))
        if write_metrics is not None:
            write_metrics(m)
    bar.close()
    result = metrics(len(curves["epoch"]) == recipe.epochs - recipe.first_epoch)
    if not todo and write_metrics is not None:  # rerun of a finished (or stopped) run: refresh metrics
        write_metrics(result)
    return CoTeachResult(result, nets)


# --- helpers -------------------------------------------------------------------------------------

def check_keep_mask(mask: np.ndarray, n_view: int, source: str, *, recipe: Recipe | None = None,
                    full_split: int | None = None) -> np.ndarray:
    """Validates a keep-mask against the train view; returns it as bool (N,).

    Raises :class:`InputError` naming ``source`` for: a non-bool dtype, a wrong shape or
    length (mentioning a whole-split mask when ``full_split`` matches), no kept row, or
    fewer kept rows than one batch when the recipe drops the last incomplete batch.
    """
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise InputError(source, "train_mask", f"expected dtype bool (True = keep), got {mask.dtype}")
    if mask.ndim != 1 or len(mask) != n_view:
        hint = ""
        if full_split is not None and mask.ndim == 1 and len(mask) == full_split != n_view:
            hint = (f" (it matches the whole split of {full_split}: was it made without the same "
                    "--subset-per-class/--subset-seed?)")
        raise InputError(source, "train_mask",
                         f"has shape {mask.shape}, the train view has {n_view} rows{hint}")
    kept = int(mask.sum())
    if kept == 0:
        raise InputError(source, "train_mask", "keeps no example")
    if recipe is not None and recipe.drop_last and kept < recipe.batch_size:
        raise InputError(source, "train_mask", f"keeps {kept} examples, fewer than one batch of "
                         f"{recipe.batch_size}; every epoch would be empty (lower --batch-size)")
    return mask


def _check_arrays(train_images, given_labels, test_images, test_labels, true_labels, test_exact) -> None:
    if len(train_images) != len(given_labels):
        raise InputError("labels", "", f"{len(given_labels)} labels for {len(train_images)} train images")
    if true_labels is not None and len(true_labels) != len(given_labels):
        raise InputError("dataset", "labels",
                         f"{len(true_labels)} dataset labels for {len(given_labels)} rows")
    if len(test_images) != len(test_labels):
        raise InputError("test dataset", "labels", f"{len(test_labels)} labels for {len(test_images)} images")
    if test_exact is not None and len(test_exact) != len(test_labels):
        raise InputError("test dataset", "exact", f"{len(test_exact)} flags for {len(test_labels)} images")
    if len(test_labels) == 0:
        raise InputError("test dataset", "", "has no images")


def adam_pair(nets: tuple[nn.Module, nn.Module], lr: float, device: torch.device) -> tuple[torch.optim.Adam, ...]:
    """One Adam per network, as the official code; the fused kernel on CUDA (same update, fewer launches)."""
    fused = {"fused": True} if device.type == "cuda" else {}
    return tuple(torch.optim.Adam(net.parameters(), lr=lr, **fused) for net in nets)


def _rng_state(loader: training.DeviceLoader, device: torch.device) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "order": loader.order_gen.get_state(),
        "aug": loader.aug_gen.get_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _checkpoint(settings, next_epoch, nets, optimizers, loader, curves, device, time_s) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "settings": settings,
        "next_epoch": int(next_epoch),
        "model1": nets[0].state_dict(),
        "model2": nets[1].state_dict(),
        "optimizer1": optimizers[0].state_dict(),
        "optimizer2": optimizers[1].state_dict(),
        "curves": {k: list(v) for k, v in curves.items()},
        "rng": _rng_state(loader, device),
        "time_s": float(time_s),
        "torch_version": str(torch.__version__),
    }


def _restore(state: dict, nets, optimizers, loader, device) -> int:
    """Loads a checkpoint into the freshly built run; returns the next epoch to train."""
    nets[0].load_state_dict(state["model1"])
    nets[1].load_state_dict(state["model2"])
    optimizers[0].load_state_dict(state["optimizer1"])
    optimizers[1].load_state_dict(state["optimizer2"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    loader.order_gen.set_state(rng["order"])
    loader.aug_gen.set_state(rng["aug"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
    return int(state["next_epoch"])
