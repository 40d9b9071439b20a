"""Every GPU figure the project needs, in the calls of one short GPU lease (issue 12).

A lease here is 15 minutes of device time in all, at most 10 per command, 64 MiB of working tree per
call, 8 result files at most (``../shared/notes/gpu-device.md``). This script is the one prepared
command of such a lease; it writes its summary after every step, so a command killed at its limit
still returns what was measured. Steps (``--steps``, in this order):

(a) ``throughput``: the training step of the fold trainer (airbench94 with its recipe; resnet50 with
    the paper's, fp32 and bf16) and of Co-Teaching (the fast recipe's batch, bf16 and the paper's
    fp32; the two networks one after the other and as one vmapped computation; eager and
    ``torch.compile``d) on synthetic data of the real shapes: images/s, ms/step, achieved TFLOP/s
    (FLOPs counted by FlopCounterMode: convolutions and matrix products, forward + backward) and
    its share of the device's bf16 rate. Each line is measured through the stages' own loops.
(b) ``condition``: with the real CIFAR-10 arrays (``--data``), one whole condition of the fast
    preset through the real stage commands: noisy labels (seed 0 = the published file), 4
    airbench94 folds as concurrent processes, combine, the five masks (cleanlab 2.9), the five
    Co-Teaching runs (``fast`` recipe) as concurrent processes on the one GPU; per-cell accuracy
    next to the paper's number, and each stage's wall time. Whatever is still running at
    ``--deadline-s`` is stopped and reported as stopped (its metrics at the last scored epoch).
(c) always, last: the whole grid's time extrapolated from (a) and (b), with the model stated.

Outputs, directly in ``--out`` (at most 8 files): ``summary.json`` (everything), ``summary.md``
(the tables), ``throughput.csv``, ``cells.csv`` (date, device, commit, recipe, condition, method,
accuracy, seconds, paper), ``session.log`` (this script's log) and ``stages.log`` (the stage
commands' output). A later call on the same machine may pass the same ``--out``: the summary is
extended, not replaced.

It needs only what the device has (torch, numpy, scikit-learn, pillow, pyyaml, fsspec, tqdm) plus
clpipe and cleanlab 2.9 installed from wheels (``docs/gpu-session.md`` has the call sequence).
``--smoke --device cpu`` runs every step at toy sizes here in a few minutes and writes the same
files; that is its test (``tests/benchmarks/test_gpu_session.py``).

    python benchmarks/gpu_session.py --out DIR [--device cuda] [--data DIR] [--steps throughput condition]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_coteach, when run from elsewhere

import bench_coteach
from clpipe.components.common import training
from clpipe.components.common.methods import CL_METHODS
from clpipe.components.coteach.model import PAPER_WIDTH, CoTeachingCNN
from clpipe.components.fold_train import loop as fold_loop
from clpipe.components.fold_train.models import build_model
from clpipe.components.fold_train.recipes import resolve_recipe as fold_recipe

log = logging.getLogger("gpu_session")

STEPS = ("throughput", "condition")
#: The device's bf16 matrix rate measured here (KINDS.md: 769-798 TFLOP/s on an 8192^3 product).
H200_BF16_TFLOPS = 790.0
#: The paper's Table 2 (Feb 2020), the cells of the condition run here (N = 0.4, S = 0.2).
PAPER_N04_S02 = {"argmax": 0.825, "conf_joint_only": 0.861, "cl_pbc": 0.849, "cl_pbnr": 0.864, "cl_both": 0.863,
                 "none": 0.616}
#: The fast grid: 12 conditions x (4 folds + 5 Co-Teaching runs).
GRID_CONDITIONS, GRID_FOLDS, GRID_METHODS = 12, 4, 5
FILES = ("summary.json", "summary.md", "throughput.csv", "cells.csv", "session.log", "stages.log")


# --- bookkeeping ----------------------------------------------------------------------------------


class Session:
    """The summary being built, written to ``out`` after every step (a killed command keeps it)."""

    def __init__(self, out: Path, device: torch.device, smoke: bool, copy_to: Path | None = None) -> None:
        self.out = out
        self.copy_to = copy_to
        self.started = time.perf_counter()
        path = out / "summary.json"
        self.data = json.loads(path.read_text()) if path.exists() else {"calls": []}
        self.data["calls"].append({"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": sys.argv[1:]})
        self.data["machine"] = machine(device)
        self.data["smoke"] = smoke
        self.data["torch_compile"] = "disabled (smoke on the CPU)" if torch._dynamo.config.disable else "enabled"
        self.data.setdefault("throughput", [])
        self.data.setdefault("condition", {})

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def save(self) -> None:
        self.data["calls"][-1]["seconds"] = round(self.elapsed(), 1)
        self.data["extrapolation"] = extrapolate(self.data)
        (self.out / "summary.json").write_text(json.dumps(self.data, indent=1) + "\n")
        (self.out / "summary.md").write_text(summary_markdown(self.data))
        write_csv(self.out / "throughput.csv", self.data["throughput"])
        write_csv(self.out / "cells.csv", self.data["condition"].get("cells", []))
        if self.copy_to is not None:  # e.g. the lease's $OUT: what a killed command returns
            for path in self.out.iterdir():
                shutil.copyfile(path, self.copy_to / path.name)


def machine(device: torch.device) -> dict:
    return {
        "device": training.device_name(device),
        "host": platform.node(),
        "cpu_cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "commit": os.environ.get("CLPIPE_COMMIT", "unknown"),
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- (a) throughput -------------------------------------------------------------------------------


def flops_per_image(model: torch.nn.Module, device: torch.device) -> float:
    """FLOPs of one image forward + backward (convolutions and matrix products), counted on a batch of 8."""
    model = model.to(device).train()
    x = torch.randn(8, 3, 32, 32, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x).float().sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 8


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random images of CIFAR-10's shape, labels cycling through the 10 classes (so every class can be
    split into folds); the step's cost does not depend on the pixels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10


def fold_line(arch: str, precision: str, compiled: bool, n: int, device: torch.device) -> dict:
    """One fold trained for 2 epochs on ``n`` synthetic images; the second epoch is the steady rate."""
    images, labels = synthetic(n)
    recipe = fold_recipe(arch, None, epochs=2, precision=precision, compile="on" if compiled else "off",
                         checkpoint_every=0)
    result = fold_loop.train_fold(images, labels, fold=0, n_folds=4, seed=0, arch=arch, fold_split="sklearn",
                                  recipe=recipe, num_classes=10, device=device, progress=False)
    first, steady = result.metrics["epoch_times_s"][0], result.metrics["epoch_times_s"][-1]
    n_train = result.metrics["n_train"]
    steps = -(-n_train // recipe.batch_size)
    return {"images_per_s": n_train / steady, "ms_per_step": 1000 * steady / steps, "batch": recipe.batch_size,
            "first_epoch_s": first, "steady_epoch_s": steady,
            "flops_per_image": flops_per_image(build_model(arch, 10), device)}


def coteach_line(precision: str, compiled: bool, stacked: bool, n: int, batch: int, width: int,
                 device: torch.device) -> dict:
    """Co-Teaching epochs of both networks on ``n`` synthetic images (bench_coteach's timing)."""
    train_x, train_y = synthetic(n)
    test_x, test_y = synthetic(max(batch, n // 8), seed=1)
    r = bench_coteach.bench(width, train_x, train_y, test_x, test_y, device, 1, batch, precision=precision,
                            compiled=compiled, stacked=stacked)
    flops = 2 * flops_per_image(CoTeachingCNN(10, width=width), device)  # both networks
    return {"images_per_s": r["train_ips"], "ms_per_step": 1000 * batch / r["train_ips"], "batch": batch,
            "eval_images_per_s": r["eval_ips"], "flops_per_image": flops}


def throughput_plan(smoke: bool) -> list[tuple[str, dict, Callable[[torch.device], dict]]]:
    """(name, settings, measuring function) in priority order: what matters most comes first."""
    n_fold, n_co, co_batch, width = (160, 64, 32, 8) if smoke else (20_000, 16_384, 256, PAPER_WIDTH)
    airbench, resnet = ("airbench-tiny", "airbench-tiny") if smoke else ("airbench94", "resnet50")
    fold = {
        "fold airbench94": (airbench, "bf16", False, n_fold),
        "fold resnet50 fp32": (resnet, "fp32", False, n_fold // 2),
        "fold airbench94 compiled": (airbench, "bf16", True, n_fold),
        "fold resnet50 bf16": (resnet, "bf16", False, n_fold // 2),
    }
    coteach = {
        "coteach fast": ("bf16", False, False),
        "coteach feb2020 fp32": ("fp32", False, False),
        "coteach fast stacked": ("bf16", False, True),
        "coteach fast compiled": ("bf16", True, False),
        "coteach fast stacked compiled": ("bf16", True, True),
    }
    # First the two lines that decide how step (b) runs (eager or compiled), then fidelity and the candidates.
    order = ["coteach fast", "coteach fast compiled", "fold airbench94", "fold airbench94 compiled",
             "coteach feb2020 fp32", "coteach fast stacked", "fold resnet50 fp32", "coteach fast stacked compiled",
             "fold resnet50 bf16"]
    plan = []
    for name in order:
        if name in fold:
            arch, precision, compiled, n = fold[name]
            settings = {"arch": arch, "precision": precision, "compiled": compiled}
            plan.append((name, settings, partial(fold_line, **settings, n=n)))
        else:
            precision, compiled, stacked = coteach[name]
            settings = {"precision": precision, "compiled": compiled, "stacked": stacked}
            plan.append((name, settings, partial(coteach_line, **settings, n=n_co, batch=co_batch, width=width)))
    return plan


def run_throughput(session: Session, device: torch.device, smoke: bool, deadline: float) -> None:
    done = {row["name"] for row in session.data["throughput"] if "error" not in row}
    for name, settings, measure in throughput_plan(smoke):
        if name in done:
            continue
        if session.elapsed() > deadline:
            log.info("throughput: deadline reached before %s", name)
            break
        log.info("throughput: %s %s", name, settings)
        started = time.perf_counter()
        row = {"name": name, **settings}
        try:
            row.update(measure(device=device))
            tflops = row["images_per_s"] * row["flops_per_image"] / 1e12
            row.update(tflops=tflops, share_of_bf16_peak=tflops / H200_BF16_TFLOPS)
        except Exception as e:  # one failing line (e.g. a compiler error) must not cost the others
            log.exception("throughput: %s failed", name)
            row["error"] = f"{type(e).__name__}: {e}"[:500]
        row["seconds"] = round(time.perf_counter() - started, 1)
        session.data["throughput"].append(row)
        session.save()
        if device.type == "cuda":
            torch.cuda.empty_cache()


# --- (b) one whole condition through the stage commands --------------------------------------------


#: How much faster the compiled step must be to pay for compiling in a short run (compiling a network takes
#: tens of seconds per process; a fast-recipe run trains for about a minute).
COMPILE_WORTH = 1.3


def compile_worth_it(throughput: list[dict], eager: str, compiled: str) -> bool:
    """Whether step (a) measured the compiled line at least :data:`COMPILE_WORTH` times the eager one."""
    rates = {row["name"]: row.get("images_per_s") for row in throughput}
    return bool(rates.get(eager) and rates.get(compiled) and rates[compiled] >= COMPILE_WORTH * rates[eager])


def run_condition(session: Session, device: torch.device, data: Path, smoke: bool, deadline: float) -> None:
    """noisy labels -> 4 folds (concurrent) -> combine -> masks -> 5 Co-Teaching runs (concurrent).

    The trainers run compiled only where step (a) showed it pays (:func:`compile_worth_it`); a compiler
    that failed in (a) is not tried again here.
    """
    work = session.out.parent / f"{session.out.name}-work"
    record = session.data["condition"] = {"name": "n0.4-s0.2", "noise": 0.4, "sparsity": 0.2, "seed": 0,
                                          "recipe": "fast", "fold_arch": "airbench94", "stages": {}}
    log_path = session.out / "stages.log"
    subset = ["--subset-per-class", "20"] if smoke else []
    device_flag = ["--device", device.type]

    def stage(name: str, commands: list[list[str]], budget_s: float | None = None) -> list[int]:
        started = time.perf_counter()
        codes = run_all(commands, log_path, work, None if budget_s is None else max(budget_s, 1.0))
        record["stages"][name] = {"seconds": round(time.perf_counter() - started, 1), "exit_codes": codes}
        session.save()
        return codes

    labels = work / "labels"
    if stage("noisy-labels", [["noisy-labels", "--dataset", str(data), "--name", record["name"], "--noise", "0.4",
                               "--sparsity", "0.2", "--seed", "0", "--out", str(labels)]]) != [0]:
        return
    fold_compile = compile_worth_it(session.data["throughput"], "fold airbench94", "fold airbench94 compiled")
    co_compile = compile_worth_it(session.data["throughput"], "coteach fast", "coteach fast compiled")
    record.update(fold_compiled=fold_compile, coteach_compiled=co_compile)
    fold_extra = ["--epochs", "1", "--batch-size", "64", "--arch", "airbench-tiny"] if smoke else \
        ["--arch", "airbench94"]
    fold_extra += ["--compile", "cuda" if fold_compile else "off"]
    folds = [work / f"fold{k}" for k in range(GRID_FOLDS)]
    codes = stage("fold-train x4", [["fold-train", "--dataset", str(data), "--labels", str(labels), "--fold", str(k),
                                     "--n-folds", str(GRID_FOLDS), *fold_extra, *subset, *device_flag,
                                     "--no-progress", "--out", str(folds[k])] for k in range(GRID_FOLDS)])
    if any(codes):
        return
    cv = work / "cv"
    if stage("combine-folds", [["combine-folds", "--out", str(cv), *map(str, folds)]]) != [0]:
        return
    record["oos_accuracy"] = json.loads((cv / "summary.json").read_text())["accuracy"]
    masks = work / "masks"
    if stage("make-masks", [["make-masks", "--labels", str(cv / "labels.npy"), "--pred-probs", str(cv),
                             "--out", str(masks)]]) != [0]:
        return
    co_extra = ["--epochs", "2", "--batch-size", "8", "--cnn-width", "8", "--class-weights", "none",
                "--test-subset-per-class", "10"] if smoke else []
    co_extra.append("--compile" if co_compile else "--no-compile")
    runs = {m: work / f"coteach-{m}" for m in CL_METHODS}
    stage("coteach x5", [["coteach", "--train-labels", str(labels), "--train-mask", str(masks), "--method", m,
                          "--recipe", "fast", *co_extra, *subset, *device_flag, "--no-progress",
                          "--out", str(out), str(data)] for m, out in runs.items()],
          budget_s=deadline - session.elapsed())
    record["cells"] = [cell(record, m, runs[m], session.data["machine"]) for m in CL_METHODS]
    session.save()


def run_all(commands: list[list[str]], log_path: Path, cwd: Path, budget_s: float | None) -> list[int]:
    """Runs ``clpipe`` commands concurrently in ``cwd`` (not a checkout, whose ``clpipe/`` folder would shadow
    the installed package); past ``budget_s`` the ones still running are stopped (exit code -9)."""
    cwd.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as logfile:
        procs = []
        for argv in commands:
            logfile.write(f"\n$ clpipe {' '.join(argv)}\n")
            logfile.flush()
            procs.append(subprocess.Popen([sys.executable, "-m", "clpipe", *argv], stdout=logfile,
                                          stderr=subprocess.STDOUT, cwd=cwd))
        end = None if budget_s is None else time.perf_counter() + budget_s
        while any(p.poll() is None for p in procs):
            if end is not None and time.perf_counter() > end:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                break
            time.sleep(1)
        return [p.wait() for p in procs]


def cell(record: dict, method: str, run: Path, machine_info: dict) -> dict:
    """One row of the ledger: the run's final (or last scored) accuracy next to the paper's."""
    metrics_path = run / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    curves = metrics.get("curves", {})
    scored = curves.get("test_acc_1") or []
    last = max(curves["test_acc_1"][-1], curves["test_acc_2"][-1]) if scored else None
    return {
        "date": time.strftime("%Y-%m-%d"),
        "device": machine_info["device"],
        "commit": machine_info["commit"],
        "recipe": record["recipe"],
        "condition": record["name"],
        "method": method,
        "accuracy": last,
        "epoch": curves.get("epoch", [None])[-1] if scored else None,
        "complete": bool(metrics.get("complete")),
        "seconds": metrics.get("time_s"),
        "paper": PAPER_N04_S02.get(method),
    }


# --- (c) extrapolation ----------------------------------------------------------------------------


def extrapolate(data: dict) -> dict:
    """The whole fast grid's GPU time from what was measured, with the model spelled out."""
    out: dict = {}
    lines = {row["name"]: row for row in data.get("throughput", []) if "images_per_s" in row}
    fold = lines.get("fold airbench94 compiled") or lines.get("fold airbench94")
    co = min((lines[n] for n in lines if n.startswith("coteach fast")), key=lambda r: -r["images_per_s"],
             default=None)
    if fold and co:
        fold_s = 10 * 37_500 / fold["images_per_s"]  # 10 epochs on 3 of 4 folds
        co_s = 30 * 40_000 / co["images_per_s"]  # 30 epochs on ~40,000 kept rows
        out["from_throughput"] = {
            "model": "grid = 12 x (4 folds x 10 epochs x 37,500 images / fold rate + 5 runs x 30 epochs x "
                     "40,000 kept images / best Co-Teaching rate); steady rates of (a), tasks one after "
                     "another, no start-up, no test-set scoring",
            "fold_rate": fold["images_per_s"], "coteach_line": co["name"], "coteach_rate": co["images_per_s"],
            "fold_s": fold_s, "coteach_run_s": co_s,
            "grid_min": GRID_CONDITIONS * (GRID_FOLDS * fold_s + GRID_METHODS * co_s) / 60,
        }
    stages = data.get("condition", {}).get("stages", {})
    if stages.get("coteach x5", {}).get("exit_codes") and all(c == 0 for c in stages["coteach x5"]["exit_codes"]):
        condition_s = sum(s["seconds"] for s in stages.values())
        out["from_condition"] = {
            "model": "grid = 12 x the measured wall time of one condition (folds and Co-Teaching runs of a "
                     "condition packed on the one GPU, conditions one after another)",
            "condition_s": condition_s, "grid_min": GRID_CONDITIONS * condition_s / 60,
        }
    return out


def summary_markdown(data: dict) -> str:
    m = data["machine"]
    title = f"# GPU session ({'smoke, ' if data['smoke'] else ''}{m['device']}, torch {m['torch']}, commit {m['commit']})"
    lines = [title, "", f"Calls: {', '.join(c['started'] for c in data['calls'])}", "",
             "## (a) Training-step throughput (synthetic data, real shapes)", "",
             "| line | images/s | ms/step | batch | TFLOP/s | share of 790 | note |", "|---|---|---|---|---|---|---|"]
    for r in data["throughput"]:
        if "error" in r:
            lines.append(f"| {r['name']} | | | | | | failed: {r['error'][:80]} |")
        else:
            lines.append(f"| {r['name']} | {r['images_per_s']:.0f} | {r['ms_per_step']:.1f} | {r['batch']} | "
                         f"{r['tflops']:.1f} | {r['share_of_bf16_peak']:.1%} | {r['seconds']} s |")
    cond = data.get("condition") or {}
    if cond:
        lines += ["", f"## (b) One condition ({cond.get('name')}, recipe {cond.get('recipe')})", "",
                  f"Out-of-sample accuracy of the folds vs given labels: {cond.get('oos_accuracy')}", "",
                  "| stage | wall s | exit codes |", "|---|---|---|"]
        lines += [f"| {k} | {v['seconds']} | {v['exit_codes']} |" for k, v in cond.get("stages", {}).items()]
        lines += ["", "| method | accuracy | epoch | complete | paper |", "|---|---|---|---|---|"]
        lines += [f"| {c['method']} | {c['accuracy']} | {c['epoch']} | {c['complete']} | {c['paper']} |"
                  for c in cond.get("cells", [])]
    lines += ["", "## (c) Extrapolation to the fast grid", ""]
    for name, e in data.get("extrapolation", {}).items():
        lines.append(f"- {name}: **{e['grid_min']:.1f} min**. Model: {e['model']}.")
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="folder for the (at most 8) result files")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--data", type=Path, help="folder with cifar10_train.npz and cifar10_test.npz for step (b)")
    p.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    p.add_argument("--deadline-s", type=float, default=540.0,
                   help="stop starting new work after this many seconds (and stop Co-Teaching runs then)")
    p.add_argument("--smoke", action="store_true", help="toy sizes: proves the script, measures nothing")
    p.add_argument("--copy-to", type=Path, help="also copy the files here after every step (the lease's $OUT)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        handlers=[logging.StreamHandler(), logging.FileHandler(args.out / "session.log")])
    device = torch.device(args.device)
    if args.smoke and device.type == "cpu":
        # Compiling on the CPU takes minutes and measures nothing here: the compiled lines run their
        # wiring with torch.compile switched off (TorchDynamo disabled), which the summary records.
        torch._dynamo.config.disable = True
    session = Session(args.out, device, args.smoke, args.copy_to)
    session.save()
    if "throughput" in args.steps:
        run_throughput(session, device, args.smoke, args.deadline_s)
    if "condition" in args.steps:
        if args.data is None or not (args.data / "cifar10_train.npz").exists():
            log.info("condition: no CIFAR-10 arrays under --data; skipped")
        else:
            run_condition(session, device, args.data.resolve(), args.smoke, args.deadline_s)
    session.save()
    print((args.out / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
