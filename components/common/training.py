"""Torch plumbing shared by the two GPU stages (fold trainer, Co-Teaching).

The speed recipe follows airbench (KellerJordan/cifar10-airbench): the whole dataset
lives on the device as one tensor, batches are index lookups, augmentation (random crop
with padding, horizontal flip) runs batched on the device, and there are no loader
workers. A split packed as shards because it is larger than memory is streamed instead
(:class:`StreamLoader`: the same batches, read by row from the shards as they are needed).
On CUDA: channels_last, and by default bf16 autocast with fp16 inputs and TF32
(``precision="bf16"``); ``precision="fp32"`` keeps inputs and arithmetic in true fp32
(TF32 off), as the 2019-2020 reference runs had it. On the CPU everything is float32 and,
for a fixed seed, bit-for-bit repeatable (``torch.use_deterministic_algorithms``).

Seeds are separated by purpose (model init, batch order, augmentation) so that, e.g.,
pruning examples changes which examples are seen but not the init of the networks.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from . import storage
from .errors import InputError
from .shards import ShardImages

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)

log = logging.getLogger(__name__)

#: Per-channel CIFAR-10 mean and std used by the seed's training scripts.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)


#: Per-channel (mean, std) the trainers normalise inputs with.
Normalisation = tuple[tuple[float, ...], tuple[float, ...]]


def input_normalisation(dataset_statistics: Normalisation | None) -> Normalisation:
    """(mean, std) the trainers normalise inputs with: the dataset's own when it has them (a dataset
    written by ``clpipe data prepare``: ``prepare.train_statistics``), else CIFAR-10's, the seed's
    constants (so the CIFAR-10 reproduction, read from its own files, is unchanged)."""
    return dataset_statistics or (CIFAR10_MEAN, CIFAR10_STD)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` = the GPU when one is visible, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch lists its ~20 device types; clpipe runs on two of them
        raise InputError("device", "", f"{name!r} is no device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device", "", "cuda was asked for but torch sees no GPU")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise InputError("device", "", f"{name}: torch sees {torch.cuda.device_count()} GPU(s)")
    return device


def seed_everything(seed: int, device: torch.device, precision: str = "bf16") -> None:
    """Seeds torch and numpy; on the CPU also makes every kernel deterministic.

    On CUDA it lets cuDNN pick the fastest kernels and allows TF32 unless ``precision`` is
    ``fp32`` (process-wide switches: one precision per process).
    """
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    else:
        tf32 = precision != "fp32"
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def autocast(device: torch.device, precision: str = "bf16") -> contextlib.AbstractContextManager:
    """bf16 mixed precision on CUDA (no loss scaling needed); a no-op on the CPU and for ``fp32``."""
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def input_dtype(device: torch.device, precision: str = "bf16") -> torch.dtype:
    """dtype of the images held on the device: fp16 on CUDA under bf16 autocast (half the memory
    traffic; pixels/255 and their normalised values keep about 3 decimal digits), else fp32."""
    return torch.float16 if device.type == "cuda" and precision == "bf16" else torch.float32


def use_compile_cache(directory: str | None = None) -> str:
    """Points ``torch.compile``'s on-disk caches at one directory shared by every task; returns it.

    Inductor keeps compiled kernels (``TORCHINDUCTOR_CACHE_DIR``, Triton's cache under it), whole
    compiled graphs (the FX graph cache) and compiled backward graphs (the AOTAutograd cache)
    there, so the second and later processes that compile the same network with the same
    shapes load the result instead of compiling again. Default: ``<clpipe cache>/torchinductor``
    (``$CLPIPE_CACHE_DIR``); variables the user already set are left alone. Share it between
    tasks by pointing ``CLPIPE_CACHE_DIR`` (or ``TORCHINDUCTOR_CACHE_DIR``) at a common volume.
    """
    default = directory or os.path.join(storage.cache_dir(), "torchinductor")
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", default)


def to_device(model: ModuleT, device: torch.device) -> ModuleT:
    """Moves ``model`` to ``device``; channels_last on CUDA, where convolutions are faster with it."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def tta_logits(model: torch.nn.Module, x: torch.Tensor, tta_flip: bool) -> torch.Tensor:
    """float32 logits of ``x``; with ``tta_flip`` the mean of the image's and its mirror's."""
    logits = model(x).float()
    if tta_flip:
        logits = (logits + model(x.flip(3)).float()) / 2
    return logits


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def generator(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


@dataclass(frozen=True)
class Augment:
    """Train-time augmentation: RandomCrop(32, padding) + RandomHorizontalFlip.

    ``pad_mode``: ``"black"`` pads with black pixels, i.e. before normalisation, as
    torchvision's ``RandomCrop`` on the seed's PIL images did; ``"constant"`` pads the
    (possibly normalised) tensor with zeros, which is the mean colour when the loader
    normalises and black when it does not; ``"reflect"`` mirrors the border (airbench).
    """

    pad: int = 4
    flip: bool = True
    pad_mode: str = "constant"


class _Batches:
    """What the two loaders share: batch order, augmentation, normalisation, the batch count.

    Args:
        images: (N, R, R, 3) uint8 pixels: an array (:class:`DeviceLoader`) or a packed split's
            view (:class:`StreamLoader`).
        labels: (N,) int labels that come with each batch.
        batch_size: Examples per batch.
        device: Where training runs.
        shuffle: New random order each epoch (seeded by ``order_seed``).
        drop_last: Skip the last incomplete batch (the seed's loaders do).
        augment: Random crop/flip, or None.
        mean, std: Per-channel normalisation, or None for the seed's [0, 1] inputs.
        order_seed, aug_seed: Seeds of the batch order and the augmentation.
        min_last_batch: A last batch smaller than this is skipped even when
            ``drop_last`` is False (the JAIR Co-Teaching code skips batches < 16).
        dtype: dtype of the images on the device (default :func:`input_dtype`: fp16 on
            CUDA, fp32 on the CPU).

    Each iteration yields ``(x, y, rows)``: x (B, 3, R, R) in the compute dtype
    (channels_last on CUDA), y (B,) int64 and the loader's rows of the batch (positions in
    ``labels``). The order of an epoch is one ``torch.randperm`` of the order generator and
    the augmentation draws from its own generator: the same for both loaders, so a streamed
    split and the same split in memory give the same batches on the CPU.
    """

    def __init__(self, images: Pixels, labels: np.ndarray, *, batch_size: int, device: torch.device,
                 shuffle: bool, drop_last: bool = False, augment: Augment | None = None,
                 mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                 order_seed: int = 0, aug_seed: int = 1, min_last_batch: int = 1,
                 dtype: torch.dtype | None = None) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.device = device
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.min_last_batch = min_last_batch
        self.dtype = dtype or input_dtype(device)
        self.mean, self.std = mean, std
        #: Where labels and rows live (and, for the in-memory loader, the images).
        self.data_device = self._data_device(images)
        aug_device = self._aug_device()
        self.y = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=self.data_device)
        self.order_gen = generator(order_seed, self.data_device)
        self.aug_gen = generator(aug_seed, aug_device)
        #: A black pixel in the loader's value space (what ``pad_mode="black"`` pads with).
        self.black = self.scaled(torch.zeros(1, 1, 1, 3, dtype=torch.uint8, device=aug_device))

    def _data_device(self, images: Pixels) -> torch.device:
        """Where labels, rows (and held images) live."""
        raise NotImplementedError

    def _aug_device(self) -> torch.device:
        """Where batches are scaled and augmented."""
        raise NotImplementedError

    def scaled(self, images: torch.Tensor) -> torch.Tensor:
        """(B, R, R, 3) uint8 -> (B, 3, R, R) in the loader's dtype, / 255 and normalised."""
        x = images.permute(0, 3, 1, 2).to(self.dtype).div_(255)
        if self.mean is not None:  # in place: a whole split in memory is scaled at once
            x.sub_(torch.tensor(self.mean, dtype=self.dtype, device=x.device).view(1, 3, 1, 1))
            x.div_(torch.tensor(self.std, dtype=self.dtype, device=x.device).view(1, 3, 1, 1))
        return x

    def __len__(self) -> int:
        full, rest = divmod(self.num_examples, self.batch_size)
        return full + (1 if rest and not self.drop_last and rest >= self.min_last_batch else 0)

    @property
    def num_examples(self) -> int:
        return len(self.y)

    def batch_rows(self) -> list[torch.Tensor]:
        """This epoch's batches of rows (draws the order)."""
        n = self.num_examples
        if self.shuffle:
            order = torch.randperm(n, generator=self.order_gen, device=self.data_device)
        else:
            order = torch.arange(n, device=self.data_device)
        return [order[b * self.batch_size : (b + 1) * self.batch_size] for b in range(len(self))]

    def images_of(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The scaled images of each batch, on the augmentation device."""
        raise NotImplementedError

    def head(self, n: int) -> torch.Tensor:
        """The first ``n`` rows' scaled images (airbench's whitening is initialised from them)."""
        first = torch.arange(min(n, self.num_examples), device=self.data_device)
        return next(self.images_of([first]))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        batches = self.batch_rows()
        for rows, x in zip(batches, self.images_of(batches)):
            if self.augment is not None:
                x = augment_batch(x, self.augment, self.aug_gen, black=self.black)
            x = x.to(self.device, non_blocking=True)
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.y[rows].to(self.device, non_blocking=True), rows


class DeviceLoader(_Batches):
    """Batches of a whole dataset held as one tensor on the training device.

    ``images``: (N, R, R, 3) uint8, placed on ``device`` when they fit in free GPU memory (with
    room to spare), otherwise kept in pinned host memory and copied over batch by batch. The
    arguments are :class:`_Batches`'.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, **batching) -> None:
        super().__init__(images, labels, **batching)
        x = self.scaled(torch.from_numpy(np.ascontiguousarray(images)).to(self.data_device))
        if self.data_device.type == "cpu" and self.device.type == "cuda":
            x = x.pin_memory()
        self.x = x
        if self.data_device != self.device:
            log.info("dataset (%.0f MB) kept in host memory: it does not fit on %s", images.nbytes * 2 / 2**20,
                     self.device)

    def _data_device(self, images: np.ndarray) -> torch.device:
        return self.device if _fits_on(self.device, images.nbytes * 2) else torch.device("cpu")

    def _aug_device(self) -> torch.device:
        return self.data_device  # augmented where the split is held, then copied over

    def images_of(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        return (self.x[rows] for rows in batches)


class StreamLoader(_Batches):
    """Batches of a packed split read from its shards as they are needed: never whole in memory.

    ``images``: a :class:`~.shards.ShardImages` view (the rows to train on, in the loader's
    row order). Each epoch's order is drawn exactly as :class:`DeviceLoader` draws it; the
    rows of each batch are then read by number (``workers`` processes read ahead, batches
    keep their order, so the number of workers changes speed, not results; default
    :func:`stream_workers`), copied to the device and scaled and augmented there. The other
    arguments are :class:`_Batches`'.
    """

    def __init__(self, images: ShardImages, labels: np.ndarray, *, workers: int | None = None, **batching) -> None:
        super().__init__(images, labels, **batching)
        self.images = images
        self.workers = stream_workers(self.device) if workers is None else workers

    def _data_device(self, images: ShardImages) -> torch.device:
        return torch.device("cpu")  # rows and labels: what the reader is asked for

    def _aug_device(self) -> torch.device:
        return self.device

    def images_of(self, batches: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        reads = torch.utils.data.DataLoader(
            _ShardRows(self.images), sampler=[rows.numpy() for rows in batches], batch_size=None,
            num_workers=self.workers, pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None,
            generator=torch.Generator(),  # else each epoch draws worker seeds from (and shifts) torch's global stream
        )
        return (self.scaled(images.to(self.device, non_blocking=True)) for images in reads)


class _ShardRows(torch.utils.data.Dataset):
    """``dataset[positions]`` = the uint8 images of those positions of a :class:`~.shards.ShardImages`."""

    def __init__(self, images: ShardImages) -> None:
        self.rows = images.rows
        self.reader = images.reader()

    def __getitem__(self, positions: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.reader.read(self.rows[positions]))


def stream_workers(device: torch.device) -> int:
    """Reader processes of a :class:`StreamLoader`: none on the CPU (the cores train; measured on
    2 cores, workers only contend: docs/benchmarks.md), on a GPU node up to 4, one core left."""
    if device.type != "cuda":
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


#: Either loader; the trainers use only what :class:`_Batches` defines.
Loader = DeviceLoader | StreamLoader


#: A split's pixels as the trainers take them (:meth:`~.datasets.Split.pixels`).
Pixels = np.ndarray | ShardImages


def make_loader(images: Pixels, labels: np.ndarray, **kwargs) -> Loader:
    """The loader for ``images``: :class:`StreamLoader` for packed shards, else :class:`DeviceLoader`."""
    if isinstance(images, ShardImages):
        return StreamLoader(images, labels, **kwargs)
    return DeviceLoader(images, labels, **kwargs)


def augment_batch(x: torch.Tensor, aug: Augment, gen: torch.Generator, *,
                  black: torch.Tensor | None = None) -> torch.Tensor:
    """Random crop of the padded batch and random horizontal flip, for a whole batch at once.

    ``black`` (1, C, 1, 1) is a black pixel in ``x``'s value space (default 0), used by
    ``pad_mode="black"``.
    """
    b, c, h, w = x.shape
    if aug.pad:
        padded = _pad(x, aug.pad, aug.pad_mode, black)
        dy = torch.randint(0, 2 * aug.pad + 1, (b,), generator=gen, device=x.device)
        dx = torch.randint(0, 2 * aug.pad + 1, (b,), generator=gen, device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        x = padded[torch.arange(b, device=x.device)[:, None, None, None],
                   torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    if aug.flip:
        flip = torch.rand(b, generator=gen, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def _pad(x: torch.Tensor, pad: int, mode: str, black: torch.Tensor | None) -> torch.Tensor:
    """``x`` with ``pad`` pixels added on every side (see :class:`Augment` for ``mode``)."""
    if mode != "black":
        return torch.nn.functional.pad(x, (pad,) * 4, mode=mode)
    b, c, h, w = x.shape
    fill = torch.zeros(1, c, 1, 1, dtype=x.dtype, device=x.device) if black is None else black.to(x)
    padded = fill.expand(b, c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, :, pad : pad + h, pad : pad + w] = x
    return padded


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < 0.4 * free


@torch.no_grad()
def predict_proba(
    model: torch.nn.Module, loader: Loader, *, tta_flip: bool = False, temperature: float = 1.0,
    precision: str = "bf16",
) -> np.ndarray:
    """(N, K) float32 softmax probabilities in dataset row order (the loader must not shuffle);
    ``precision`` as in :func:`autocast`."""
    model.eval()
    out = []
    for x, _, _ in loader:
        with autocast(loader.device, precision):
            logits = tta_logits(model, x, tta_flip)
        out.append(torch.softmax(logits / temperature, dim=1).cpu())
    return torch.cat(out).numpy().astype(np.float32)

