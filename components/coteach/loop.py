"""The Co-Teaching training loop (the paper's CIFAR-10 step 3), read top to bottom.

Vocabulary (docs/architecture.md): the train *view* has N rows in ImageFolder order, K
classes; ``keep`` is a bool (N,) mask, True = train on the row (a make-masks
``train_mask.npy``); no mask = plain Co-Teaching on every noisy label (method ``none``).
Epochs are numbered as in the official loops: epoch ``e`` uses entry ``e`` of every
schedule, and a recipe trains epochs ``first_epoch .. epochs - 1`` (the Feb-2020 and 2018
code spend epoch 0 evaluating the random init, so ``epochs=250`` trains 249 epochs).

The pieces, in the order a run uses them: input checks, one seed per purpose, the data
on the device, the two networks and their optimisers, the schedules, one epoch (train,
then score the test set), the curves and metrics; :func:`train_coteaching` at the bottom
strings them together. The method itself (schedules, weights, the exchanged loss, one
epoch) is :mod:`.method`; saving and resuming is :mod:`.checkpoint`.

Class weights: the paper's rules use the dataset's **true** labels (for the seed's noisy
CIFAR-10 the class folders are the ground truth), i.e. they leak the noise rates of the
kept set into training. They are implemented faithfully for reproduction and named as
such (``feb2020``, ``jair2021``); ``given`` is the same idea from the given labels only
(no leak), ``none`` switches weighting off.

What a run costs is set by the recipe (:mod:`.recipes`): the test set is scored after every
``eval_every``-th epoch and after the last (``curves`` has one entry per scored epoch,
``epoch_log`` one per trained epoch); the state is saved after every ``checkpoint_every``-th
epoch and after the last, on a background thread (:class:`.checkpoint.BackgroundWriter`);
on CUDA the networks run in the recipe's ``precision`` and, with ``compile``, through
``torch.compile`` with its on-disk cache shared between tasks.

Bit-for-bit: on the CPU two runs with the same inputs and seed give identical curves, and
a run resumed from its checkpoint gives the same curves as an uninterrupted one. On CUDA
(cuDNN autotuning, compiled kernels) runs are close but not bit-identical.

Where this differs from the official code, and why:

- The whole (possibly subset) test set is scored; the official test loaders use
  ``drop_last=True`` (9,984 of 10,000 images). The shared test set is partly a JPEG
  re-encoding, so the accuracy on its exact rows is reported alongside.
- The official epoch 0 only evaluates the random init; that evaluation is skipped (nothing
  is reported from it) -- the schedules still start at index ``first_epoch``.
- Batches, crops and flips are drawn on the device from clpipe's own seeded streams, so no
  run repeats the official random numbers; on CUDA the networks run channels_last, and in
  bf16 where the recipe says so (the paper recipes: fp32, as the official runs).
- Small-loss ties and empty selections: see :mod:`.method`.
- Other datasets than CIFAR-10: the number of classes and the resolution come from the data (the
  CNN averages whatever map its last convolution leaves, so any R >= 28 px works; at 32 px it is
  the official network), and a recipe that normalises uses the dataset's own per-channel mean and
  std when ``clpipe data prepare`` recorded them (CIFAR-10's otherwise, as the official code).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..common import training
from ..common.coteaching_cnn import MIN_RESOLUTION
from ..common.errors import InputError
from . import checkpoint, method
from .model import build_pair
from .recipes import Recipe, check_recipe, is_due, trained_epochs

log = logging.getLogger(__name__)

#: One entry per trained epoch in the metrics' ``epoch_log``.
EPOCH_KEYS = ("epoch", "train_loss_1", "train_loss_2", "forget_rate", "lr", "beta1", "epoch_time_s",
              "train_time_s")
#: Test-set scores, added to an epoch's entry when it is scored.
SCORE_KEYS = ("test_acc_1", "test_acc_2", "test_exact_acc_1", "test_exact_acc_2")
#: One entry per scored epoch in the metrics' ``curves`` (its epoch_log entry and its scores).
CURVE_KEYS = ("epoch", *SCORE_KEYS, *EPOCH_KEYS[1:])


# ================================================================================================
# Inputs
# ================================================================================================

def check_keep_mask(mask: np.ndarray, n_view: int, source: str, *, recipe: Recipe | None = None,
                    whole_split: int | None = None) -> np.ndarray:
    """Validates a keep-mask against the train view; returns it as bool (N,).

    Raises :class:`InputError` naming ``source`` for: a non-bool dtype, a wrong shape or
    length (saying which lengths are accepted when the view is a subset of a ``whole_split``
    of that many rows), no kept row, or fewer kept rows than one batch when the recipe drops
    the last incomplete batch.
    """
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise InputError(source, "train_mask", f"expected dtype bool (True = keep), got {mask.dtype}")
    if mask.ndim != 1 or len(mask) != n_view:
        hint = ""
        if whole_split is not None and whole_split != n_view:
            hint = (f" (a subset of the whole split's {whole_split} rows; a mask of either length is accepted: "
                    "was it made with other `subset_per_class`/`subset_seed`?)")
        raise InputError(source, "train_mask",
                         f"has shape {mask.shape}, the train view has {n_view} rows{hint}")
    kept = int(mask.sum())
    if kept == 0:
        raise InputError(source, "train_mask", "keeps no example")
    if recipe is not None and recipe.drop_last and kept < recipe.batch_size:
        raise InputError(source, "train_mask", f"keeps {kept} examples, fewer than one batch of "
                         f"{recipe.batch_size}; every epoch would be empty (lower `batch_size`)")
    return mask


def check_arrays(train_images, given_labels, test_images, test_labels, true_labels, test_exact) -> None:
    """Raises :class:`InputError` when the arrays of one run do not line up."""
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
    side = train_images.shape[1]
    if side < MIN_RESOLUTION:
        raise InputError("dataset", "images", f"are {side} px, the Co-Teaching CNN needs at least {MIN_RESOLUTION}: "
                         "prepare the dataset at 32 px or more (clpipe data prepare --resolution 32)")
    if test_images.shape[1:] != train_images.shape[1:]:
        raise InputError("test dataset", "images", f"are {test_images.shape[1:]}, the train images "
                         f"{train_images.shape[1:]}: prepare both splits at one resolution")


def check_stop_after(stop_after: int | None) -> None:
    """``stop_after`` counts epochs to have trained in total: None (all) or at least 1."""
    if stop_after is not None and stop_after < 1:
        raise InputError("stop_after", "", f"must be >= 1 (epochs trained in total), got {stop_after}")


# ================================================================================================
# Seeds, data, networks, schedules
# ================================================================================================

@dataclass(frozen=True)
class Seeds:
    """One random stream per purpose, so that a different mask never changes the init."""

    init: int  # network weights (:func:`~.model.build_pair`)
    order: int  # batch order
    aug: int  # crops and flips
    run: int  # torch's global stream: dropout

    @classmethod
    def from_seed(cls, seed: int) -> Seeds:
        return cls(*(int(s.generate_state(1, dtype=np.uint64)[0] % 2**63)
                     for s in np.random.SeedSequence(seed).spawn(4)))


def effective_precision(recipe: Recipe, device: torch.device) -> str:
    """The recipe's precision on CUDA; the CPU always computes in fp32."""
    return recipe.precision if device.type == "cuda" else "fp32"


def input_normalisation(recipe: Recipe,
                        dataset_statistics: training.Normalisation | None) -> training.Normalisation | None:
    """(mean, std) of the inputs when the recipe normalises (the dataset's own statistics when it has
    them, else CIFAR-10's: :func:`~..common.training.input_normalisation`), None when it does not
    (the Feb-2020 and 2018 recipes feed pixels / 255, as the official ``ToTensor()``)."""
    return training.input_normalisation(dataset_statistics) if recipe.normalize else None


def make_loaders(train_images: training.Pixels, labels: np.ndarray, test_images: training.Pixels,
                 test_labels: np.ndarray, recipe: Recipe, device: torch.device,
                 seeds: Seeds,
                 normalisation: training.Normalisation | None) -> tuple[training.Loader, training.Loader]:
    """The kept train rows (shuffled, augmented) and the test set: held on the device, or streamed
    from packed shards (:func:`~..common.training.make_loader`)."""
    mean, std = normalisation or (None, None)
    dtype = training.input_dtype(device, effective_precision(recipe, device))
    train_loader = training.make_loader(
        train_images, labels, batch_size=recipe.batch_size, device=device, shuffle=True,
        drop_last=recipe.drop_last, min_last_batch=recipe.min_last_batch,
        augment=training.Augment(pad=4, flip=True) if recipe.augment else None,
        mean=mean, std=std, order_seed=seeds.order, aug_seed=seeds.aug, dtype=dtype,
    )
    test_loader = training.make_loader(test_images, test_labels, batch_size=1024, device=device,
                                       shuffle=False, mean=mean, std=std, dtype=dtype)
    return train_loader, test_loader


@dataclass(frozen=True)
class Networks:
    """The two CNNs, what runs them (the same modules, or their compiled wrappers) and one Adam each.

    Parameters, state dicts and checkpoints always go through ``nets``; forward and backward
    passes through ``runners``.
    """

    nets: tuple[nn.Module, nn.Module]
    runners: tuple[nn.Module, nn.Module]
    optimizers: tuple[torch.optim.Adam, torch.optim.Adam]


def make_networks(num_classes: int, recipe: Recipe, device: torch.device, seeds: Seeds) -> Networks:
    """The two CNNs (independently initialised from ``seeds.init``), compiled on CUDA if the recipe says so."""
    nets = build_pair(num_classes, width=recipe.cnn_width, dropout=recipe.dropout,
                      dropout_at_eval=recipe.eval_dropout, seed=seeds.init)
    nets = tuple(training.to_device(net, device) for net in nets)
    runners = nets
    if recipe.compile and device.type == "cuda":
        training.use_compile_cache()
        runners = tuple(torch.compile(net) for net in nets)
    return Networks(nets, runners, method.adam_pair(nets, recipe.lr, device))


@dataclass(frozen=True)
class Schedules:
    """Per-epoch forget rate, learning rate and Adam beta1, indexed by schedule epoch."""

    forget_rate: np.ndarray
    lr: np.ndarray
    beta1: np.ndarray

    @classmethod
    def of(cls, recipe: Recipe) -> Schedules:
        forget_rates = method.forget_rate_schedule(recipe.epochs, recipe.forget_rate, recipe.num_gradual,
                                                   recipe.exponent)
        lrs, beta1s = method.lr_beta1_schedule(recipe.epochs, recipe.lr, recipe.epoch_decay_start,
                                               recipe.mom1, recipe.mom2)
        return cls(forget_rates, lrs, beta1s)


# ================================================================================================
# One epoch: train both networks; score them on the test set when it is due
# ================================================================================================

def train_one_epoch(epoch: int, networks: Networks, loader: training.Loader,
                    weights: torch.Tensor | None, schedules: Schedules, recipe: Recipe, precision: str,
                    bar: tqdm) -> dict:
    """Trains epoch ``epoch`` with its scheduled lr, beta1 and forget rate; returns its epoch_log entry."""
    for opt in networks.optimizers:
        method.adjust_optimizer(opt, schedules.lr[epoch], schedules.beta1[epoch])
    stats = method.train_epoch(networks.runners, networks.optimizers, loader,
                               forget_rate=float(schedules.forget_rate[epoch]), weights=weights,
                               double_normalise=recipe.double_normalise, precision=precision, bar=bar)
    return {
        "epoch": epoch,
        "train_loss_1": stats.train_loss_1,
        "train_loss_2": stats.train_loss_2,
        "forget_rate": float(schedules.forget_rate[epoch]),
        "lr": float(schedules.lr[epoch]),
        "beta1": float(schedules.beta1[epoch]),
        "train_time_s": stats.seconds,
    }


def score_test_set(networks: Networks, loader: training.Loader, exact_rows: torch.Tensor | None,
                   recipe: Recipe, precision: str) -> dict:
    """Both networks' accuracy on the test set and on its exact rows (net 1 first, as the official loop)."""
    correct = [method.evaluate(net, loader, tta_flip=recipe.tta_flip, precision=precision)
               for net in networks.runners]
    return {
        "test_acc_1": method.accuracy(correct[0], None),
        "test_acc_2": method.accuracy(correct[1], None),
        "test_exact_acc_1": None if exact_rows is None else method.accuracy(correct[0], exact_rows),
        "test_exact_acc_2": None if exact_rows is None else method.accuracy(correct[1], exact_rows),
    }


def run_epoch(epoch: int, networks: Networks, train_loader: training.Loader,
              test_loader: training.Loader, exact_rows: torch.Tensor | None, weights: torch.Tensor | None,
              schedules: Schedules, recipe: Recipe, precision: str, bar: tqdm) -> dict:
    """Trains one epoch and, when :func:`~.recipes.is_due` for ``eval_every``, scores it; returns its entry."""
    started = time.perf_counter()
    entry = train_one_epoch(epoch, networks, train_loader, weights, schedules, recipe, precision, bar)
    if is_due(recipe, epoch, recipe.eval_every):
        entry.update(score_test_set(networks, test_loader, exact_rows, recipe, precision))
    entry["epoch_time_s"] = time.perf_counter() - started
    return entry


def log_epoch(entry: dict, recipe: Recipe, bar: tqdm) -> None:
    scored = "test_acc_1" in entry
    if scored:
        bar.set_postfix(epoch=entry["epoch"], acc1=f"{entry['test_acc_1']:.4f}", acc2=f"{entry['test_acc_2']:.4f}")
    accuracy = f"test acc {entry['test_acc_1']:.4f} / {entry['test_acc_2']:.4f}, " if scored else ""
    log.info("epoch %d (last %d): %strain loss %.4f / %.4f, forget rate %.3f, lr %.2e, %.1f s",
             entry["epoch"], recipe.epochs - 1, accuracy, entry["train_loss_1"], entry["train_loss_2"],
             entry["forget_rate"], entry["lr"], entry["epoch_time_s"])


# ================================================================================================
# Curves and metrics
# ================================================================================================

def summarise(curves: dict[str, list], recipe: Recipe) -> tuple[dict, dict]:
    """``final`` (both nets' max at the last scored epoch, Feb-2020 rule) and ``best`` (max over scored epochs)."""
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
class History:
    """What the run recorded so far, and the time it took, across resumes.

    Attributes:
        epoch_log: One list per :data:`EPOCH_KEYS` entry, one value per trained epoch.
        curves: One list per :data:`CURVE_KEYS` entry, one value per scored epoch.
        prior_s: Seconds spent before this process (from the checkpoint).
        n_prior: Epochs trained before this process.
        setup_s: Seconds this process spent before its first epoch.
    """

    epoch_log: dict[str, list]
    curves: dict[str, list]
    prior_s: float = 0.0
    n_prior: int = 0
    setup_s: float = 0.0

    @classmethod
    def start(cls, resume: dict | None) -> History:
        if resume is None:
            return cls({k: [] for k in EPOCH_KEYS}, {k: [] for k in CURVE_KEYS})
        epoch_log = {k: list(resume["epoch_log"][k]) for k in EPOCH_KEYS}
        curves = {k: list(resume["curves"][k]) for k in CURVE_KEYS}
        return cls(epoch_log, curves, float(resume.get("time_s", 0.0)), len(epoch_log["epoch"]))

    @property
    def epochs_done(self) -> int:
        return len(self.epoch_log["epoch"])

    def add(self, entry: dict) -> None:
        """Records a trained epoch; a scored one (with :data:`SCORE_KEYS`) also joins the curves."""
        for key in EPOCH_KEYS:
            self.epoch_log[key].append(entry[key])
        if "test_acc_1" in entry:
            for key in CURVE_KEYS:
                self.curves[key].append(entry[key])

    def logs(self) -> dict[str, dict[str, list]]:
        return {"curves": self.curves, "epoch_log": self.epoch_log}

    def time_s(self) -> float:
        """Wall seconds of the whole run: earlier processes, this one's setup and its epochs."""
        return self.prior_s + self.setup_s + float(sum(self.epoch_log["epoch_time_s"][self.n_prior:]))


def run_metadata(recipe: Recipe, *, seed: int, num_classes: int, n_view: int, n_train: int, n_test: int,
                 exact_rows: torch.Tensor | None, weights: np.ndarray | None, steps_per_epoch: int,
                 device: torch.device, resolution: int, normalisation: training.Normalisation | None,
                 metadata: dict | None) -> dict:
    """The fixed part of the metrics (contract of docs/architecture.md)."""
    return {
        "stage": "coteach",
        "resolution": int(resolution),
        "normalisation": None if normalisation is None else {"mean": list(normalisation[0]),
                                                             "std": list(normalisation[1])},
        **(metadata or {}),
        "recipe_params": dataclasses.asdict(recipe),
        "seed": int(seed),
        "epochs": recipe.epochs,
        "first_epoch": recipe.first_epoch,
        "n_view": n_view,
        "n_train": n_train,
        "n_removed": int(n_view - n_train),
        "n_test": n_test,
        "n_test_exact": None if exact_rows is None else len(exact_rows),
        "n_classes": int(num_classes),
        "class_weights": None if weights is None else [float(v) for v in weights],
        "accuracy_unit": "fraction of test images (0-1)",
        "steps_per_epoch": steps_per_epoch,
        "precision": effective_precision(recipe, device),
        "compiled": bool(recipe.compile and device.type == "cuda"),
        "device": training.device_name(device),
        "torch_version": str(torch.__version__),
    }


def metrics(meta: dict, history: History, recipe: Recipe, steps_per_epoch: int) -> dict:
    """The metrics after the epochs trained so far (``complete`` once the last one is done).

    A copy: it may be written on the background thread while the next epoch is recorded.
    """
    final, best = summarise(history.curves, recipe)
    times = history.epoch_log["epoch_time_s"]
    train_s = sum(history.epoch_log["train_time_s"])
    train_images_seen = len(times) * steps_per_epoch * recipe.batch_size
    return {
        **meta,
        "epochs_done": history.epochs_done,
        "complete": history.epochs_done == len(trained_epochs(recipe)),
        "curves": {k: list(v) for k, v in history.curves.items()},
        "epoch_log": {k: list(v) for k, v in history.epoch_log.items()},
        "final": final,
        "best": best,
        "time_s": history.time_s(),
        "epoch_time_s": float(np.mean(times)) if times else None,
        "images_per_s": train_images_seen / train_s if train_s > 0 else None,  # training only
    }


def epochs_to_run(recipe: Recipe, next_epoch: int, stop_after: int | None) -> range:
    """The epochs this process trains: from ``next_epoch`` to the end or to ``stop_after`` in total."""
    last_epoch = recipe.epochs
    if stop_after is not None:
        last_epoch = min(last_epoch, recipe.first_epoch + stop_after)
    return range(next_epoch, last_epoch)


# ================================================================================================
# Entry point
# ================================================================================================

@dataclass
class CoTeachResult:
    """What :func:`train_coteaching` returns: the metrics (contract of docs/architecture.md)
    and the two trained networks."""

    metrics: dict
    nets: tuple[nn.Module, nn.Module]


def train_coteaching(
    train_images: training.Pixels,
    given_labels: np.ndarray,
    test_images: training.Pixels,
    test_labels: np.ndarray,
    *,
    recipe: Recipe,
    seed: int,
    device: torch.device,
    keep: np.ndarray | None = None,
    true_labels: np.ndarray | None = None,
    test_exact: np.ndarray | None = None,
    num_classes: int | None = None,
    dataset_statistics: training.Normalisation | None = None,
    resume: dict | None = None,
    resume_source: str = "checkpoint",
    write_checkpoint: Callable[[bytes], None] | None = None,
    write_metrics: Callable[[dict], None] | None = None,
    stop_after: int | None = None,
    metadata: dict | None = None,
    progress: bool,
) -> CoTeachResult:
    """Trains two Co-Teaching networks on the kept rows, scoring them on the test set as the recipe says.

    The settings have no defaults here: :func:`..coteach.stage.coteach` holds them.

    Args:
        train_images: (N, R, R, 3) uint8 train view, ImageFolder order (R = 32 for CIFAR-10; the
            CNN takes any R >= 28), in memory or streamed from packed shards (:class:`~..common.shards.ShardImages`).
        given_labels: (N,) int given (noisy) labels; the networks train on these.
        test_images: (M, R, R, 3) uint8 test images (in memory or streamed).
        test_labels: (M,) int test labels.
        recipe: Hyperparameters, including when to score the test set (``eval_every``) and
            when to save (``checkpoint_every``).
        seed: Seeds the init (:func:`~.model.build_pair`), batch order, augmentation and
            dropout, each from its own stream.
        device: Where to train.
        keep: (N,) bool, True = train on the row; None = all rows (plain Co-Teaching).
        true_labels: (N,) int dataset labels (ground truth for the seed's CIFAR-10); only
            the ``feb2020``/``jair2021`` class-weight rules read them.
        test_exact: (M,) bool rows with the official pixels (``Split.exact``) or None
            (then the exact-subset accuracies are None).
        num_classes: K (default ``max label + 1``).
        dataset_statistics: The dataset's per-channel (mean, std), used when the recipe normalises
            (default: CIFAR-10's; :func:`input_normalisation`).
        resume: A checkpoint dict (:func:`.checkpoint.load_checkpoint`) to continue from;
            its settings must equal this run's (:func:`.checkpoint.check_resume`).
        resume_source: Name of the checkpoint in error messages.
        write_checkpoint: Receives the checkpoint bytes after every ``checkpoint_every``-th
            epoch, after the last one and after the one ``stop_after`` ends on. Called on a
            background thread, before the same epoch's ``write_metrics``; every call has
            returned when this function returns.
        write_metrics: Receives the metrics dict after every epoch (same thread).
        stop_after: Stop (cleanly, after checkpointing) once this many epochs are done in
            total -- for time-boxed jobs; a rerun continues. At least 1.
        metadata: Extra keys for the metrics (dataset URLs, method, ...).
        progress: tqdm progress bar over the steps.

    Returns:
        The metrics (``complete`` False if stopped early) and the two networks.
    """
    setup_start = time.perf_counter()
    check_recipe(recipe)
    check_stop_after(stop_after)
    precision = effective_precision(recipe, device)
    given_labels = np.asarray(given_labels, dtype=np.int64)
    test_labels = np.asarray(test_labels, dtype=np.int64)
    num_classes = num_classes or int(max(given_labels.max(), test_labels.max())) + 1
    check_arrays(train_images, given_labels, test_images, test_labels, true_labels, test_exact)
    if keep is not None:
        keep = check_keep_mask(keep, len(given_labels), "keep", recipe=recipe)
    if true_labels is not None:
        true_labels = np.asarray(true_labels, dtype=np.int64)
    weights = method.class_weights(recipe.class_weights, given_labels, keep, num_classes=num_classes,
                                   true_labels=true_labels)
    normalisation = input_normalisation(recipe, dataset_statistics)
    settings = checkpoint.run_settings(
        recipe, seed=seed, num_classes=num_classes, given_labels=given_labels, keep=keep,
        true_labels=true_labels, weights=weights, train_images=train_images, test_images=test_images,
        test_labels=test_labels, test_exact=test_exact, normalisation=normalisation, device=device,
    )
    if resume is not None:
        checkpoint.check_resume(resume["settings"], settings, resume_source)

    seeds = Seeds.from_seed(seed)
    training.seed_everything(seeds.run, device, precision)  # dropout; deterministic kernels on the CPU
    rows = np.arange(len(given_labels)) if keep is None else np.flatnonzero(keep)
    train_loader, test_loader = make_loaders(train_images[rows], given_labels[rows], test_images, test_labels,
                                             recipe, device, seeds, normalisation)
    exact_rows = None if test_exact is None else torch.from_numpy(np.flatnonzero(test_exact))
    weights_t = None if weights is None else torch.tensor(weights, device=device)
    networks = make_networks(num_classes, recipe, device, seeds)
    schedules = Schedules.of(recipe)

    history = History.start(resume)
    next_epoch = recipe.first_epoch
    if resume is not None:
        next_epoch = checkpoint.restore(resume, networks.nets, networks.optimizers, train_loader, device)
        log.info("resuming from %s at epoch %d (%d epochs done)", resume_source, next_epoch, history.epochs_done)
    meta = run_metadata(recipe, seed=seed, num_classes=num_classes, n_view=len(given_labels), n_train=len(rows),
                        n_test=len(test_labels), exact_rows=exact_rows, weights=weights,
                        steps_per_epoch=len(train_loader), device=device, resolution=train_images.shape[1],
                        normalisation=normalisation, metadata=metadata)
    metrics_now = functools.partial(metrics, meta, history, recipe, len(train_loader))
    history.setup_s = time.perf_counter() - setup_start

    todo = epochs_to_run(recipe, next_epoch, stop_after)
    bar = tqdm(total=len(todo) * len(train_loader), desc="coteach", unit="step", disable=not progress)
    with checkpoint.BackgroundWriter() as writer:
        for epoch in todo:
            entry = run_epoch(epoch, networks, train_loader, test_loader, exact_rows, weights_t, schedules,
                              recipe, precision, bar)
            history.add(entry)
            log_epoch(entry, recipe, bar)
            save = epoch == todo[-1] or is_due(recipe, epoch, recipe.checkpoint_every)
            if write_checkpoint is not None and save:
                state = checkpoint.snapshot(settings, epoch + 1, networks.nets, networks.optimizers, train_loader,
                                            history.logs(), device, history.time_s())
                writer.submit(checkpoint.write_snapshot, write_checkpoint, state)
            if write_metrics is not None:
                writer.submit(write_metrics, metrics_now())
        bar.close()
        result = metrics_now()
        if not todo and write_metrics is not None:  # rerun of a finished (or stopped) run: refresh metrics
            writer.submit(write_metrics, result)
    return CoTeachResult(result, networks.nets)
