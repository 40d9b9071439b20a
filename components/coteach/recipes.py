"""Co-Teaching recipes: the hyperparameters of one run, by name (torch-free).

This module imports no torch, so that compiling and submitting a pipeline
(``pipelines/config.py``) can name and check recipes without the training extra.

Recipes (:data:`RECIPES`, flags override fields):

- ``feb2020`` (default): the single-trial protocol behind the Feb-2020 Table 2 (arXiv v1-v3),
  ``confidentlearning_and_coteaching/main.py``.
- ``jair2021``: the JAIR 10-trial protocol (``cifar10_train_crossval.py --coteaching`` with
  cleanlab ~d941d19f); its forget rate is noise/2 and must be given.
- ``coteaching2018``: bhanML/Co-teaching's CIFAR-10 settings (200 epochs, no augmentation,
  no class weights), the paper's Co-Teaching baseline row.
- ``fast``: clpipe's GPU preset, the Feb-2020 Co-Teaching compressed to 30 epochs.

Fields fall in two groups. The *method* fields decide what is computed (schedules, loss,
weights, network). The *cost* fields (``eval_every``, ``checkpoint_every``, ``precision``,
``compile``) decide how often the test set is scored and state is saved, and how the
arithmetic runs on a GPU; the paper recipes keep the official code's choices (score every
epoch, fp32), the fast recipe trades them for speed. On the CPU every recipe runs eager fp32.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..common.errors import InputError

#: Class-weight rules (see :func:`.method.class_weights`).
CLASS_WEIGHT_RULES = ("feb2020", "jair2021", "given", "none")
#: Arithmetic on CUDA: ``fp32`` (TF32 off, as the 2019 GPUs of the official runs) or ``bf16``
#: (bf16 autocast, fp16 inputs, TF32 for what stays fp32). The CPU always computes in fp32.
PRECISIONS = ("fp32", "bf16")


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
        exponent: c > 0, the ramp goes to ``forget_rate ** c`` (which stays in [0, 1)).
        class_weights: Rule of :func:`.method.class_weights`.
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
        eval_every: Score the test set after every ``eval_every``-th trained epoch and always
            after the last one (official: 1). Scoring is 17 % of an epoch's arithmetic at
            width 128 with mirror TTA; the Feb-2020 table reports the last epoch only.
        checkpoint_every: Save the resumable state after every ``checkpoint_every``-th trained
            epoch and always after the last one (or the one ``stop_after`` ends on). A
            checkpoint of the width-128 pair is 101.6 MiB.
        precision: One of :data:`PRECISIONS`; applies on CUDA only.
        compile: ``torch.compile`` the two networks (CUDA only): fuses BatchNorm, LeakyReLU
            and pooling into fewer kernels; compiled graphs are cached on disk
            (:func:`~clpipe.components.common.training.use_compile_cache`).
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
    eval_every: int = 1
    checkpoint_every: int = 1
    precision: str = "fp32"
    compile: bool = False


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
        class_weights="feb2020",  # 5000 // bincount(TRUE labels of the kept rows), Python-2 floor
        augment=True, normalize=False,  # crop+flip, ToTensor only
        drop_last=True,
        eval_every=1, checkpoint_every=1,  # the official loop scores every epoch
        precision="fp32",       # the official runs: fp32 on 2019 GPUs
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
        eval_every=1, checkpoint_every=1,  # JAIR reports the best epoch: every epoch is scored
        precision="fp32",
    ),
    # --- bhanML/Co-teaching main.py (notes §5c), the paper's Co-Teaching baseline -------------
    "coteaching2018": Recipe(
        epochs=200, first_epoch=1,
        batch_size=128, lr=1e-3, epoch_decay_start=80, mom1=0.9, mom2=0.1,
        forget_rate=0.2, num_gradual=10, exponent=1.0,
        class_weights="none",
        augment=False, normalize=False,
        drop_last=True,
        eval_every=1, checkpoint_every=1, precision="fp32",
    ),
    # --- clpipe's fast preset (pipelines/configs/table2-fast.yaml) ------------------------------
    # The Feb-2020 Co-Teaching compressed for one GPU, with airbench's lessons applied where
    # they do not change the method: same CNN, same exchange of small-loss samples, same
    # forget-rate ramp and Adam lr/beta1 plan, scaled to 30 epochs (decay from epoch 10 as 80
    # is of 250; a 5-epoch ramp); larger batches (256) with a square-root-scaled lr for GPU
    # throughput; normalised inputs; deterministic evaluation (dropout off) with mirror TTA,
    # scored after epochs 10, 20 and 30 only (the table reads the last); a checkpoint at the
    # same points; bf16 and compiled networks on a GPU.
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
        eval_every=10, checkpoint_every=10,
        precision="bf16", compile=True,
    ),
}
DEFAULT_RECIPE = "feb2020"
#: Recipe names, for torch-free callers (pipelines/config.py).
RECIPE_NAMES = tuple(RECIPES)
#: Fields that change how often state is saved but never what is computed: a run may resume
#: from a checkpoint written with other values (see :func:`.checkpoint.run_settings`).
SAVE_ONLY_FIELDS = ("checkpoint_every",)


def resolve_recipe(name: str, **overrides) -> Recipe:
    """The named recipe with the non-None ``overrides`` (the entry point's parameters) applied and checked."""
    if name not in RECIPES:
        raise InputError("recipe", "", f"unknown recipe {name!r}; choose from {RECIPE_NAMES}")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown recipe fields {sorted(unknown)}")
    recipe = dataclasses.replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})
    check_recipe(recipe, name)
    return recipe


def check_recipe(recipe: Recipe, name: str = "recipe") -> None:
    """Raises :class:`InputError` (naming the parameter) for values the loop cannot run with."""
    fr = recipe.forget_rate
    if fr is None:
        raise InputError("forget_rate", "", f"recipe {name} has no default forget rate; give one "
                         "(JAIR: noise / 2, i.e. 0.1, 0.2 or 0.3)")
    checks = [
        ("forget_rate", 0.0 <= fr < 1.0, f"must lie in [0, 1), got {fr}"),  # False for NaN
        # c <= 0 would ramp to forget_rate ** c >= 1 (forget every sample; 0 ** -1 divides by 0).
        ("exponent", recipe.exponent > 0 and math.isfinite(recipe.exponent),
         f"must be a finite number > 0, got {recipe.exponent}"),
        ("epochs", recipe.epochs > recipe.first_epoch,
         f"must exceed the first trained epoch {recipe.first_epoch}, got {recipe.epochs}"),
        ("batch_size", recipe.batch_size > 0, f"must be > 0, got {recipe.batch_size}"),
        ("lr", recipe.lr > 0 and math.isfinite(recipe.lr), f"must be > 0, got {recipe.lr}"),
        ("num_gradual", recipe.num_gradual >= 0, f"must be >= 0, got {recipe.num_gradual}"),
        ("epoch_decay_start", recipe.epoch_decay_start >= 0,
         f"must be >= 0, got {recipe.epoch_decay_start}"),
        ("mom2", 0.0 <= recipe.mom2 < 1.0, f"must lie in [0, 1), got {recipe.mom2}"),
        ("cnn_width", recipe.cnn_width >= 1, f"must be >= 1, got {recipe.cnn_width}"),
        ("class_weights", recipe.class_weights in CLASS_WEIGHT_RULES,
         f"unknown rule {recipe.class_weights!r}; choose from {CLASS_WEIGHT_RULES}"),
        ("eval_every", recipe.eval_every >= 1, f"must be >= 1, got {recipe.eval_every}"),
        ("checkpoint_every", recipe.checkpoint_every >= 1, f"must be >= 1, got {recipe.checkpoint_every}"),
        ("precision", recipe.precision in PRECISIONS,
         f"unknown precision {recipe.precision!r}; choose from {PRECISIONS}"),
    ]
    for parameter, ok, problem in checks:
        if not ok:
            raise InputError(parameter, "", problem)


def trained_epochs(recipe: Recipe) -> range:
    """Schedule indices of the epochs a complete run trains: ``first_epoch .. epochs - 1``."""
    return range(recipe.first_epoch, recipe.epochs)


def is_due(recipe: Recipe, epoch: int, every: int) -> bool:
    """True after every ``every``-th trained epoch and after the last one.

    Counted from the first trained epoch, so ``every=10`` with ``first_epoch=0`` and 30
    epochs gives epochs 9, 19 and 29 (the 10th, 20th and 30th trained). Depends on the
    epoch alone, never on where a run was stopped, so a resumed run scores and draws
    random numbers exactly as an uninterrupted one.
    """
    return epoch == recipe.epochs - 1 or (epoch - recipe.first_epoch + 1) % every == 0
