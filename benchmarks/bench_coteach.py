"""Co-Teaching throughput: epoch time and images/s of the paper's two CNNs (prints, never asserts).

Times the stage's own loop (``method.train_epoch`` = both networks forward, small-loss
exchange, both backward/Adam steps; ``method.evaluate`` = both networks on the test set) on
real CIFAR-10 images with the feb2020 recipe (batch 128, crop+flip, forget rate 0.2 as
after the ramp). On the CPU only a few hundred images are timed and a full epoch is
**extrapolated** from the measured rates; on CUDA (bf16 autocast, channels_last, data on
the device) whole epochs are timed by default. Compare: the seed's runs took a median of
about 24 s per epoch for the two CNNs on 2019 GPUs (confident-learning.md section 7).

    python benchmarks/bench_coteach.py                      # CPU: 256 train / 256 test images
    python benchmarks/bench_coteach.py --widths 128 8 --train-images 512
    python benchmarks/bench_coteach.py --device cuda        # whole 50k/10k epochs
    python benchmarks/bench_coteach.py --device cuda --compile --pair stacked   # the candidates
    python benchmarks/bench_coteach.py --device cuda --precision fp32           # the paper recipes' cost

``--pair stacked`` runs both networks as one computation (``coteach/pair.py``), ``--compile``
through ``torch.compile`` (cache: ``$CLPIPE_CACHE_DIR/torchinductor``), ``--precision fp32``
without bf16 autocast and TF32 (what the feb2020/jair2021 recipes now do on a GPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from clpipe.components.common import datasets, training
from clpipe.components.coteach import method, pair, recipes
from clpipe.components.coteach.model import build_pair
from timing import DATA

SHARED = DATA / "cifar10"
FULL_TRAIN, FULL_TEST = 50_000, 10_000
SEED_EPOCH_S = 24.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stacked_epoch(stacked: pair.StackedPair, optimizer, loader: training.DeviceLoader, *, forget_rate: float,
                  weights, double_normalise: bool, precision: str) -> method.EpochStats:
    """One epoch of :func:`pair.stacked_step` (the candidate: both networks in one computation)."""
    start = time.perf_counter()
    stacked.train()
    steps = images = 0
    for x, y, _ in loader:
        pair.stacked_step(stacked, optimizer, x, y, forget_rate=forget_rate, weights=weights,
                          double_normalise=double_normalise, precision=precision)
        steps, images = steps + 1, images + len(y)
    return method.EpochStats(float("nan"), float("nan"), steps, images, time.perf_counter() - start)


def bench(width: int, train_x, train_y, test_x, test_y, device: torch.device, epochs: int,
          batch: int, *, precision: str = "bf16", compiled: bool = False, stacked: bool = False) -> dict:
    """Times ``epochs`` Co-Teaching epochs (reports the last, after a one-batch warm-up).

    ``stacked`` trains with :class:`pair.StackedPair` instead of the two networks one after
    the other; ``compiled`` wraps the networks (or the stacked forward) in ``torch.compile``.
    """
    recipe = recipes.resolve_recipe("feb2020", cnn_width=width, batch_size=batch)
    training.seed_everything(0, device, precision)
    dtype = training.input_dtype(device, precision)
    loader = training.DeviceLoader(train_x, train_y, batch_size=batch, device=device, shuffle=True,
                                   drop_last=True, augment=training.Augment(pad=4, flip=True), dtype=dtype)
    test_loader = training.DeviceLoader(test_x, test_y, batch_size=1024, device=device, shuffle=False, dtype=dtype)
    nets = tuple(training.to_device(n, device) for n in build_pair(10, width=width, seed=0))
    kwargs = {"forget_rate": recipe.forget_rate, "weights": None, "double_normalise": recipe.double_normalise,
              "precision": precision}
    if compiled:
        training.use_compile_cache()
    if stacked:
        model = pair.StackedPair(nets)
        optimizer = pair.stacked_adam(model, recipe.lr, device)
        if compiled:
            model.compile()

        def train(data):
            return stacked_epoch(model, optimizer, data, **kwargs)
    else:
        runners = tuple(torch.compile(net) for net in nets) if compiled else nets
        optimizers = method.adam_pair(nets, recipe.lr, device)

        def train(data):
            return method.train_epoch(runners, optimizers, data, **kwargs)
    warm = training.DeviceLoader(train_x[:batch], train_y[:batch], batch_size=batch, device=device,
                                 shuffle=False, drop_last=True, dtype=dtype)
    train(warm)  # allocations, cuDNN autotuning, compilation
    if stacked:
        model.unstack_into(nets)
    for net in nets:
        method.evaluate(net, training.DeviceLoader(test_x[:256], test_y[:256], batch_size=1024, device=device,
                                                   shuffle=False, dtype=dtype), precision=precision)
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        stats = train(loader)
        _sync(device)
        train_s = time.perf_counter() - start
        if stacked:
            model.unstack_into(nets)
        start = time.perf_counter()
        accs = [float(method.evaluate(net, test_loader, precision=precision).double().mean()) for net in nets]
        _sync(device)
        eval_s = time.perf_counter() - start
    train_ips = stats.images / train_s
    eval_ips = len(test_y) * 2 / eval_s  # test images through one network per second
    full_epoch_s = FULL_TRAIN / train_ips + 2 * FULL_TEST / eval_ips
    return {"width": width, "train_images": stats.images, "steps": stats.steps, "train_s": train_s,
            "train_ips": train_ips, "eval_ips": eval_ips, "full_epoch_s": full_epoch_s,
            "run_250_h": full_epoch_s * 249 / 3600, "acc": max(accs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[128], help="CNN base widths (paper: 128)")
    p.add_argument("--train-images", type=int, help="train images per epoch (default: 256 CPU, 50000 CUDA)")
    p.add_argument("--test-images", type=int, help="test images scored (default: 256 CPU, 10000 CUDA)")
    p.add_argument("--epochs", type=int, help="timed epochs, the last is reported (default: 1 CPU, 2 CUDA)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=recipes.PRECISIONS, default="bf16", help="CUDA arithmetic")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks")
    p.add_argument("--pair", choices=("separate", "stacked"), default="separate",
                   help="the two networks one after the other (the loop today) or as one computation")
    args = p.parse_args()
    device = training.select_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    n_train = args.train_images or (FULL_TRAIN if cuda else 256)
    n_test = args.test_images or (FULL_TEST if cuda else 256)
    epochs = args.epochs or (2 if cuda else 1)
    train = datasets.open_split(str(SHARED), "train")
    test = datasets.open_split(str(SHARED), "test")
    rng = np.random.default_rng(0)
    train_rows = np.sort(rng.choice(len(train), size=min(n_train, len(train)), replace=False))
    test_rows = np.sort(rng.choice(len(test), size=min(n_test, len(test)), replace=False))
    train_x, train_y = train.images()[train_rows], train.labels[train_rows]
    test_x, test_y = test.images()[test_rows], test.labels[test_rows]
    extrapolated = n_train < FULL_TRAIN or n_test < FULL_TEST
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} {training.device_name(device)}, "
          f"{os.cpu_count()} CPU cores, torch {torch.__version__}")
    print(f"# feb2020 recipe, batch {args.batch_size}, {args.precision}, {args.pair} networks"
          f"{', compiled' if args.compile else ''}; timed {n_train} train / {n_test} test images, "
          f"last of {epochs} epoch(s)"
          + ("; full-epoch figures are EXTRAPOLATED from these rates" if extrapolated else ""))
    print("| CNN width | train images/s (both nets) | test images/s (per net) "
          "| epoch 50k train + 2x10k test (s) | 249 trained epochs (h) |")
    print("|---|---|---|---|---|")
    for width in args.widths:
        r = bench(width, train_x, train_y, test_x, test_y, device, epochs, args.batch_size,
                  precision=args.precision, compiled=args.compile, stacked=args.pair == "stacked")
        print(f"| {r['width']} | {r['train_ips']:.1f} | {r['eval_ips']:.1f} | {r['full_epoch_s']:.1f} | "
              f"{r['run_250_h']:.2f} |")
    print(f"seed's runs (2019 GPUs): median about {SEED_EPOCH_S:.0f} s per epoch, 99.7 min per 250-epoch run")


if __name__ == "__main__":
    main()
