"""What the fast grid (table2-fast) costs, counted on the CPU: FLOPs, bytes written, processes, start-up.

The grid: 12 conditions x (4 airbench94 folds + 5 Co-Teaching runs with the ``fast`` recipe), plus
the CPU stages (noisy labels, combine folds, masks, per-condition and final reports). For each
stage and for the whole grid this prints, *before* (Co-Teaching scoring the test set and
writing a checkpoint after every epoch, every task inflating the dataset ``.npz``) and *after*
(the recipe's ``eval_every``/``checkpoint_every``, the memory-mapped decoded dataset):

- FLOPs, counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (convolutions
  and matrix products, forward and backward, per image; elementwise work is not counted), split
  into training and test-set scoring;
- bytes written (checkpoints measured by serialising the real width-128 state, metrics and the
  other outputs from their array shapes);
- processes started, and the start-up of one training process measured here (fresh
  interpreters: import of the stage, then opening the train and test splits);
- each part's share of an estimated GPU time (FLOPs at ``--tflops`` effective, checkpoints at
  the write time measured here, start-up as measured). The GPU rate is an assumption, printed.

Co-Teaching runs train on the rows a mask keeps: the kept counts of the published masks the
Feb-2020 runs used (``tests/coteach/published_coteaching_masks.json``, the same 12 conditions and
5 methods) stand in for the fast preset's own masks, which are not known before the run.

Targets (issue 12): test-set scoring at most 5 % of the grid's FLOPs, at most 20 GiB written,
start-up at most 2 s per task measured here. Prints, asserts nothing:

    python benchmarks/grid_cost.py [--tflops 250] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from clpipe.components.common import storage, training
from clpipe.components.coteach import checkpoint, loop, recipes
from clpipe.components.coteach.model import build_pair
from clpipe.components.fold_train.models import build_model
from clpipe.components.fold_train.recipes import resolve_recipe as fold_recipe
from timing import DATA
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
MASK_FACTS = REPO / "tests" / "coteach" / "published_coteaching_masks.json"
CONDITIONS, FOLDS, METHODS = 12, 4, 5
N_TRAIN, N_TEST, N_CLASSES = 50_000, 10_000, 10
GIB = 2**30
#: CPU tasks per condition (noisy labels, fold plan, combine, masks, condition report) and the final report.
CPU_TASKS_PER_CONDITION, CPU_TASKS_ONCE = 5, 1
#: H200 dense bf16 peak used for the share-of-peak line (docs: about 790 TFLOP/s measured for matmul).
H200_BF16_TFLOPS = 790.0


# --- FLOPs per image -------------------------------------------------------------------------------

def flops_per_image(model: torch.nn.Module, *, backward: bool, batch: int = 4) -> float:
    """Counted FLOPs of one image through ``model`` (forward, or forward + backward), on the meta device."""
    model = model.to("meta")
    model.train(backward)
    x = torch.zeros(batch, 3, 32, 32, device="meta")
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if backward:
            out.float().sum().backward()
    return counter.get_total_flops() / batch


# --- one Co-Teaching run and one fold ----------------------------------------------------------------

@dataclass(frozen=True)
class Cost:
    train_flops: float = 0.0
    eval_flops: float = 0.0
    bytes_written: float = 0.0
    checkpoints: int = 0
    processes: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)))

    def times(self, n: int) -> Cost:
        return Cost(*(a * n for a in dataclasses.astuple(self)))

    @property
    def flops(self) -> float:
        return self.train_flops + self.eval_flops


def coteach_run(recipe: recipes.Recipe, n_kept: int, step_flops: float, fwd_flops: float,
                checkpoint_bytes: int, metrics_bytes: float) -> Cost:
    """One Co-Teaching run of ``recipe`` on ``n_kept`` rows (both networks; drop_last batches)."""
    epochs = recipes.trained_epochs(recipe)
    images_per_epoch = (n_kept // recipe.batch_size) * recipe.batch_size
    scored = [e for e in epochs if recipes.is_due(recipe, e, recipe.eval_every)]
    saved = [e for e in epochs if recipes.is_due(recipe, e, recipe.checkpoint_every)]
    passes = 2 if recipe.tta_flip else 1
    return Cost(
        train_flops=2 * len(epochs) * images_per_epoch * step_flops,
        eval_flops=2 * len(scored) * N_TEST * passes * fwd_flops,
        bytes_written=len(saved) * checkpoint_bytes + len(epochs) * metrics_bytes,
        checkpoints=len(saved),
        processes=1,
    )


def fold_run(step_flops: float, fwd_flops: float, output_bytes: float) -> Cost:
    """One airbench94 fold: train on 3/4 of the split, predict the held-out quarter."""
    recipe = fold_recipe("airbench94")
    n_heldout = N_TRAIN // FOLDS
    passes = 2 if recipe.tta else 1
    return Cost(train_flops=recipe.epochs * (N_TRAIN - n_heldout) * step_flops,
                eval_flops=n_heldout * passes * fwd_flops, bytes_written=output_bytes, processes=1)


# --- bytes -------------------------------------------------------------------------------------------

def measured_checkpoint(width: int) -> tuple[int, float]:
    """(bytes, seconds to serialise and write) of a real checkpoint of the width-``width`` pair after one step."""
    nets = build_pair(N_CLASSES, width=width, seed=0)
    optimizers = tuple(torch.optim.Adam(net.parameters()) for net in nets)
    for net, opt in zip(nets, optimizers, strict=True):
        net(torch.zeros(2, 3, 32, 32)).sum().backward()
        opt.step()
    loader = training.DeviceLoader(np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, np.int64), batch_size=2,
                                   device=torch.device("cpu"), shuffle=True)
    logs = {"curves": {k: [0.5] * 3 for k in loop.CURVE_KEYS}, "epoch_log": {k: [0.5] * 30 for k in loop.EPOCH_KEYS}}
    state = checkpoint.snapshot({"recipe": {}}, 1, nets, optimizers, loader, logs, torch.device("cpu"), 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        data = checkpoint.checkpoint_bytes(state)
        storage.write_bytes(os.path.join(tmp, "checkpoint.pt"), data)
        seconds = time.perf_counter() - started
    return len(data), seconds


def metrics_bytes(recipe: recipes.Recipe) -> float:
    """Mean size of one metrics.json write over a run (it grows by one epoch per write)."""
    history = loop.History.start(None)
    sizes = []
    for epoch in recipes.trained_epochs(recipe):
        entry = {k: 0.123456789 for k in loop.EPOCH_KEYS} | {"epoch": epoch}
        if recipes.is_due(recipe, epoch, recipe.eval_every):
            entry |= {k: 0.987654321 for k in loop.SCORE_KEYS}
        history.add(entry)
        meta = {"stage": "coteach", "recipe_params": dataclasses.asdict(recipe), "dataset": "x" * 60}
        sizes.append(len(storage.json_bytes(loop.metrics(meta, history, recipe, 150))))
    return float(np.mean(sizes))


def npy_size(shape: tuple[int, ...], dtype) -> int:
    return len(storage.npy_bytes(np.zeros(shape, dtype)))


def small_outputs() -> dict[str, float]:
    """Bytes each non-Co-Teaching task writes, from the shapes of its outputs (plus ~4 KB of JSON each)."""
    json_kb = 4096
    n_heldout = N_TRAIN // FOLDS
    return {
        "fold": npy_size((n_heldout, N_CLASSES), np.float32) + 2 * npy_size((n_heldout,), np.int64) + json_kb,
        "noisy_labels": npy_size((N_TRAIN,), np.int64) + npy_size((N_CLASSES, N_CLASSES), np.float64) + json_kb,
        "combine": npy_size((N_TRAIN, N_CLASSES), np.float32) + npy_size((N_TRAIN,), np.int64) + json_kb,
        "masks": METHODS * npy_size((N_TRAIN,), bool) + json_kb,
        "report": 500_000,  # per-condition record and final report with plots, order of magnitude
    }


# --- start-up ----------------------------------------------------------------------------------------

STARTUP_SNIPPET = """
import resource, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
from clpipe.components.coteach import cli, loop  # the rest of the stage: fsspec, the loop
t2 = time.perf_counter()
import numpy as np
from clpipe.components.common import datasets
{open_data}
t3 = time.perf_counter()
cpu = resource.getrusage(resource.RUSAGE_SELF)
print(t1 - t0, t2 - t1, t3 - t2, cpu.ru_utime + cpu.ru_stime)
"""
OPEN_NPZ = """
for name in ("cifar10_train.npz", "cifar10_test.npz"):
    np.load(r"{data}/" + name)["images"]  # inflate, as every task did before
"""
OPEN_CACHED = """
for split in ("train", "test"):
    datasets.open_split(r"{data}", split).images()  # decoded .npy, memory-mapped, ImageFolder order
"""


def startup(kind: str, repeats: int, cache_dir: str) -> dict[str, float]:
    """Median over fresh interpreters: import seconds, dataset seconds, CPU seconds of the whole start."""
    open_data = (OPEN_NPZ if kind == "npz" else OPEN_CACHED).format(data=DATA / "cifar10")
    code = STARTUP_SNIPPET.format(open_data=open_data)
    env = {**os.environ, "OMP_NUM_THREADS": "1", storage.CACHE_DIR_ENV: cache_dir}
    if kind == "cached":  # warm the decoded cache once (the first task of a machine pays the decode)
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, cwd=REPO)
    rows = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True,
                             cwd=REPO).stdout.split()
        rows.append([float(v) for v in out])
    torch_s, stage_s, data_s, cpu_s = (statistics.median(col) for col in zip(*rows, strict=True))
    return {"torch_s": torch_s, "stage_s": stage_s, "data_s": data_s, "total_s": torch_s + stage_s + data_s,
            "cpu_s": cpu_s}


# --- report ------------------------------------------------------------------------------------------

def grid(fast: recipes.Recipe, kept: list[int], flops: dict, ckpt_bytes: int, outputs: dict) -> dict[str, Cost]:
    """Cost per stage of the whole grid under Co-Teaching recipe ``fast``."""
    per_metrics = metrics_bytes(fast)
    coteach = Cost()
    for n_kept in kept:
        coteach = coteach + coteach_run(fast, n_kept, flops["ct_step"], flops["ct_fwd"], ckpt_bytes, per_metrics)
    cpu_bytes = CONDITIONS * (outputs["noisy_labels"] + outputs["combine"] + outputs["masks"] + outputs["report"])
    return {
        "fold_train": fold_run(flops["ab_step"], flops["ab_fwd"], outputs["fold"]).times(CONDITIONS * FOLDS),
        "coteach": coteach,
        "cpu stages": Cost(bytes_written=cpu_bytes, processes=CONDITIONS * CPU_TASKS_PER_CONDITION + CPU_TASKS_ONCE),
    }


def print_table(title: str, stages: dict[str, Cost], startup_s: float, ckpt_write_s: float, tflops: float,
                background_writes: bool) -> dict[str, float]:
    total = sum(stages.values(), Cost())
    gpu_processes = stages["fold_train"].processes + stages["coteach"].processes
    seconds = {
        "training": total.train_flops / (tflops * 1e12),
        "evaluation": total.eval_flops / (tflops * 1e12),
        # a checkpoint written on the background thread overlaps the next epoch: off the critical path
        "checkpoints": 0.0 if background_writes else total.checkpoints * ckpt_write_s,
        "start-up": gpu_processes * startup_s,
    }
    wall = sum(seconds.values())
    print(f"\n## {title}\n")
    print("| stage | PFLOP | of which scoring | GiB written | checkpoints | processes |")
    print("|---|---|---|---|---|---|")
    for name, cost in [*stages.items(), ("**grid**", total)]:
        scoring = f"{cost.eval_flops / cost.flops:.1%}" if cost.flops else "-"
        print(f"| {name} | {cost.flops / 1e15:.1f} | {scoring} | {cost.bytes_written / GIB:.2f} | "
              f"{cost.checkpoints} | {cost.processes} |")
    print(f"\nEstimated GPU-bound time at {tflops:.0f} TFLOP/s effective "
          f"({tflops / H200_BF16_TFLOPS:.0%} of an H200's {H200_BF16_TFLOPS:.0f} bf16 peak; an ASSUMED rate), "
          "with tasks one after another:\n")
    print("| part | minutes | share |")
    print("|---|---|---|")
    for part, s in seconds.items():
        print(f"| {part} | {s / 60:.1f} | {s / wall:.1%} |")
    print(f"| **total** | {wall / 60:.1f} | |")
    packed = CONDITIONS * 2  # design: one GPU process per condition and training stage (docs/benchmarks.md)
    print(f"\nWith the packing design (one GPU process per condition for its folds, one for its Co-Teaching runs; "
          f"not built): {packed} GPU processes instead of {gpu_processes}, start-up {packed * startup_s / 60:.1f} "
          "minutes.")
    return {"eval_share": total.eval_flops / total.flops, "gib": total.bytes_written / GIB, "minutes": wall / 60}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tflops", type=float, default=250.0, help="assumed effective GPU rate for the time shares")
    p.add_argument("--repeats", type=int, default=3, help="fresh interpreters per start-up figure (median)")
    args = p.parse_args()
    torch.set_num_threads(1)

    facts = json.loads(MASK_FACTS.read_text())["masks"]
    kept = [m["kept"] for methods in facts.values() for m in methods.values()]
    assert len(kept) == CONDITIONS * METHODS, len(kept)
    fast = recipes.resolve_recipe("fast")
    before = dataclasses.replace(fast, eval_every=1, checkpoint_every=1)
    ct_net = build_pair(N_CLASSES, width=fast.cnn_width)[0]
    flops = {
        "ct_fwd": flops_per_image(ct_net, backward=False),
        "ct_step": flops_per_image(ct_net, backward=True),
        "ab_fwd": flops_per_image(build_model("airbench94", N_CLASSES), backward=False),
        "ab_step": flops_per_image(build_model("airbench94", N_CLASSES), backward=True),
    }
    ckpt_bytes, ckpt_s = measured_checkpoint(fast.cnn_width)
    outputs = small_outputs()
    with tempfile.TemporaryDirectory() as cache:
        start_npz = startup("npz", args.repeats, cache)
        start_cached = startup("cached", args.repeats, cache)

    print(f"# grid_cost.py, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}: {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}")
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"\nFLOPs per image (FlopCounterMode): Co-Teaching CNN width {fast.cnn_width}: forward "
          f"{flops['ct_fwd'] / 1e9:.2f} G, forward+backward {flops['ct_step'] / 1e9:.2f} G (per network); "
          f"airbench94: {flops['ab_fwd'] / 1e9:.3f} G, {flops['ab_step'] / 1e9:.3f} G.")
    print(f"Checkpoint of the width-{fast.cnn_width} pair: {ckpt_bytes / 2**20:.1f} MiB, serialised and written "
          f"in {ckpt_s:.2f} s here. Co-Teaching rows kept: mean {np.mean(kept):.0f} of {N_TRAIN} "
          f"(published masks, {len(kept)} runs).")
    print("\nStart-up of one training process, fresh interpreter, median of "
          f"{args.repeats} (OMP_NUM_THREADS=1):\n")
    print("| dataset read | import torch (s) | rest of the stage (s) | open train+test (s) | total wall (s) | "
          "CPU of the process (s) |")
    print("|---|---|---|---|---|---|")
    for name, s in (("before: inflate the .npz", start_npz), ("after: decoded .npy, memory-mapped", start_cached)):
        print(f"| {name} | {s['torch_s']:.2f} | {s['stage_s']:.2f} | {s['data_s']:.2f} | {s['total_s']:.2f} | "
              f"{s['cpu_s']:.2f} |")

    old = print_table("Before: fast recipe scoring and saving every epoch; .npz inflated per task",
                      grid(before, kept, flops, ckpt_bytes, outputs), start_npz["total_s"], ckpt_s, args.tflops,
                      background_writes=False)
    new = print_table(f"After: eval_every={fast.eval_every}, checkpoint_every={fast.checkpoint_every} "
                      "(background writes), memory-mapped dataset",
                      grid(fast, kept, flops, ckpt_bytes, outputs), start_cached["total_s"], ckpt_s, args.tflops,
                      background_writes=True)
    print("\n## Targets\n")
    print(f"- scoring <= 5 % of the grid's FLOPs: before {old['eval_share']:.1%}, after {new['eval_share']:.1%} "
          f"-> {'met' if new['eval_share'] <= 0.05 else 'NOT met'}")
    print(f"- <= 20 GiB written: before {old['gib']:.1f} GiB, after {new['gib']:.1f} GiB "
          f"-> {'met' if new['gib'] <= 20 else 'NOT met'}")
    print(f"- start-up <= 2 s per task here: before {start_npz['total_s']:.2f} s, after {start_cached['total_s']:.2f} s "
          f"wall ({start_cached['cpu_s']:.2f} s CPU) -> {'met' if start_cached['total_s'] <= 2 else 'NOT met'}"
          " (wall time on a shared machine; see the load average above)")


if __name__ == "__main__":
    main()
