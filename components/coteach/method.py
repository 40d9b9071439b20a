"""The Co-Teaching method: schedules, class weights, the exchanged small-loss update, one epoch.

Co-Teaching (Han et al. 2018; notes ``confident-learning.md`` §5): two networks see the
same batch; each ranks it by its own per-sample (class-weighted) cross-entropy and keeps
its ``int((1 - forget_rate) * B)`` smallest-loss samples; **net 1 is updated on net 2's
selection and net 2 on net 1's**. One named function per trick, in reading order:
:func:`forget_rate_schedule`, :func:`lr_beta1_schedule`, :func:`adjust_optimizer`,
:func:`class_weights`, :func:`num_remember`, :func:`select_small_loss`,
:func:`coteaching_loss`, then one epoch (:func:`train_epoch`) and the test-set score
(:func:`evaluate`). The loop that strings them together is :mod:`.loop`.

Where this differs from the official code, and why:

- Ties in the small-loss ranking are broken by a stable sort (official: numpy quicksort);
  ``num_remember`` is at least 1 (official: an empty selection gives a NaN loss).
- Without a mask no class weights are used (the JAIR driver; the Feb-2020 code always had a
  mask, and its rule would give all ones).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..common import training
from ..common.errors import InputError
from .recipes import CLASS_WEIGHT_RULES

# ================================================================================================
# Schedules and weights
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

    - ``feb2020``: ``bincount(true) // bincount(true[keep])`` -- the Feb-2020 code
      (``5000 // count of kept rows whose TRUE class is k``). Uses ground truth. **Floored**:
      the original (``data/utils.py``, ``noisify_from_file``) divides two numpy integer
      arrays with ``/`` under Python 2.7 without ``from __future__ import division``, which
      is integer (floor) division, so its weights are whole numbers (the published 20 %-noise
      masks give 2 for airplane and 1 for every other class, not 1.15-2.7).
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
        raise InputError("class_weights", "", f"unknown rule {rule!r}; choose from {CLASS_WEIGHT_RULES}")
    if keep is None:
        return None
    if rule in ("feb2020", "jair2021") and true_labels is None:
        raise InputError("class_weights", "", f"rule {rule} needs the dataset's (true) labels")
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
                         "use `class_weights` given or none")
    ratio = np.floor_divide if rule == "feb2020" else np.true_divide
    weights = np.where(denominator > 0, ratio(numerator, np.maximum(denominator, 1)), 0.0)
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



def adam_pair(nets: tuple[nn.Module, nn.Module], lr: float, device: torch.device) -> tuple[torch.optim.Adam, ...]:
    """One Adam per network, as the official code; the fused kernel on CUDA (same update, fewer launches)."""
    fused = {"fused": True} if device.type == "cuda" else {}
    return tuple(torch.optim.Adam(net.parameters(), lr=lr, **fused) for net in nets)


# ================================================================================================
# One epoch, and the test-set score
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
    loader: training.Loader,
    *,
    forget_rate: float,
    weights: torch.Tensor | None,
    double_normalise: bool,
    precision: str = "bf16",
    bar: tqdm | None = None,
) -> EpochStats:
    """One Co-Teaching epoch over ``loader`` (both networks, every step exchanged).

    ``nets`` may be compiled wrappers (``torch.compile``) of the networks ``optimizers``
    update. ``precision`` is the CUDA arithmetic (:data:`~.recipes.PRECISIONS`).
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
        with training.autocast(device, precision):
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
def evaluate(net: nn.Module, loader: training.Loader, *, tta_flip: bool = False,
             precision: str = "bf16") -> torch.Tensor:
    """(N,) bool: is the network's top-1 prediction right, per test row (``eval()`` mode).

    With the paper's network, dropout stays on, so this is a random draw like the
    official evaluation. ``tta_flip`` scores the mean logits of each image and its mirror.
    """
    net.eval()
    correct = torch.zeros(loader.num_examples, dtype=torch.bool, device=loader.data_device)
    for x, y, rows in loader:
        with training.autocast(loader.device, precision):
            pred = training.tta_logits(net, x, tta_flip).argmax(dim=1)
        correct[rows] = (pred == y).to(correct.device)
    return correct.cpu()


def accuracy(correct: torch.Tensor, rows: torch.Tensor | None) -> float | None:
    if rows is None:
        return float(correct.double().mean())
    if not len(rows):
        return None
    return float(correct[rows].double().mean())

