"""Your own images, end to end by the stage commands: how well the ranked issues find injected errors.

Two datasets nobody here made, each written as an ImageFolder with a known fraction of images
moved into a wrong class folder (the injected label errors), then run through the stages as a
user would, each timed:

1. ``clpipe data prepare`` at the training resolution;
2. ``clpipe fold-train`` for each of K folds (given labels = the folders);
3. ``clpipe combine-folds``;
4. ``clpipe make-masks --dataset`` (label_issues.csv, cleaned labels, noise matrix);
5. the review gallery (components/report/gallery.py).

Datasets: scikit-learn's digits (1,797 8x8 grayscale scans, prepared at 32 px so that the
airbench network fits) and a CIFAR-10 train subset prepared at 64 px (fold network ``--cifar-arch``,
default ``auto``: the resolution table of common/networks.py, ResNet-18 at 64 px). Prints precision and
recall of the flagged set (``is_label_issue``) and of the top-k ranked rows (k = the number
injected) against the injected errors, per CL method too, and the time of each stage. Prints,
never asserts; figures go to docs/benchmarks.md ("Your own images").

    OMP_NUM_THREADS=2 python benchmarks/bench_your_data.py --datasets digits cifar64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.your_data (the dataset writers)

from clpipe.components.common import datasets
from clpipe.components.common.artifacts import LabelIssues
from clpipe.components.report import gallery
from timing import DATA

from clpipe.cli import main as clpipe
from tests.your_data import digits_imagefolder, png


def cifar_imagefolder(root: Path, per_class: int, noise: float, seed: int) -> set[str]:
    """A CIFAR-10 train subset as PNGs, ``noise`` of them in a uniformly chosen wrong class folder."""
    split = datasets.open_split(str(DATA / "cifar10"), "train")
    small = split.take(datasets.subset_rows(split.labels, per_class, seed))
    rng = np.random.default_rng(seed)
    flip = set(rng.choice(len(small), size=round(noise * len(small)), replace=False).tolist())
    flipped = set()
    for i, (name, label, image) in enumerate(zip(small.names, small.labels, small.images())):
        given = rng.choice([k for k in range(10) if k != label]) if i in flip else label
        target = root / "train" / small.classes[given] / name.split("/")[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png(image))
        if i in flip:
            flipped.add(str(target))
    return flipped


def run(cmd: list[str], times: dict, stage: str) -> None:
    started = time.perf_counter()
    code = clpipe(cmd)
    times[stage] = times.get(stage, 0.0) + time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{stage} failed with exit code {code}: clpipe {' '.join(cmd)}")


def pipeline(folder: Path, work: Path, *, resolution: int, arch: str, epochs: int, n_folds: int) -> dict:
    """The stages on one ImageFolder; returns the stage times."""
    times: dict[str, float] = {}
    prepared = str(work / "prepared")
    run(["data", "prepare", "--dataset", str(folder), "--resolution", str(resolution), "--out", prepared], times,
        "prepare")
    np.save(work / "labels.npy", datasets.open_split(prepared).labels)  # given labels = the folders
    for k in range(n_folds):
        run(["fold-train", "--dataset", prepared, "--labels", str(work / "labels.npy"), "--fold", str(k),
             "--n-folds", str(n_folds), "--arch", arch, "--epochs", str(epochs), "--device", "cpu",
             "--no-progress", "--out", str(work / f"fold{k}")], times, "fold-train (all folds)")
    run(["combine-folds", "--out", str(work / "cv"), *(str(work / f"fold{k}") for k in range(n_folds))],
        times, "combine-folds")
    run(["make-masks", "--labels", str(work / "cv" / "labels.npy"), "--pred-probs", str(work / "cv"),
         "--dataset", prepared, "--out", str(work / "masks")], times, "make-masks")
    started = time.perf_counter()
    gallery.write_gallery(str(work / "masks"), prepared, str(work / "report"))
    times["gallery"] = time.perf_counter() - started
    return times


def scores(work: Path, injected_names: set[str]) -> dict:
    """Precision/recall of the flagged set, per method, and of the top-k ranked rows."""
    prepared = datasets.open_split(str(work / "prepared"))
    issues = LabelIssues.read(str(work / "masks"))
    name_of_row = prepared.names
    ranked = [str(name_of_row[r]) for r in issues.columns["row"]]
    truth = np.array([n in injected_names for n in ranked])
    out = {"n": len(ranked), "injected": int(truth.sum())}

    def pr(flags: np.ndarray) -> tuple[float, float]:
        hits = int((flags & truth).sum())
        return hits / max(int(flags.sum()), 1), hits / max(int(truth.sum()), 1)

    out["flagged"] = int(issues.columns["is_label_issue"].sum())
    out["precision"], out["recall"] = pr(issues.columns["is_label_issue"])
    top_k = np.zeros(len(ranked), bool)
    top_k[: out["injected"]] = True
    out["top_k_precision"], _ = pr(top_k)
    out["methods"] = {m: dict(zip(("precision", "recall"), pr(issues.columns[m]))) for m in issues.methods}
    summary = json.loads((work / "cv" / "summary.json").read_text())
    out["oos_accuracy_vs_given"] = summary.get("accuracy")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", choices=("digits", "cifar64"), default=["digits", "cifar64"])
    p.add_argument("--noise", type=float, default=0.1, help="fraction of images put in a wrong folder")
    p.add_argument("--n-folds", type=int, default=4)
    p.add_argument("--digits-arch", default="airbench94", help="fold network for digits at 32 px")
    p.add_argument("--digits-epochs", type=int, default=10)
    p.add_argument("--cifar-per-class", type=int, default=100)
    p.add_argument("--cifar-epochs", type=int, default=8)
    p.add_argument("--cifar-arch", default="auto", help="fold network for the CIFAR-10 subset at 64 px")
    p.add_argument("--keep", help="keep the work folders here")
    args = p.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()} {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, noise {args.noise}, {args.n_folds} folds")
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-your-data-"))
    try:
        for name in args.datasets:
            work = root / name
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            if name == "digits":
                folder = digits_imagefolder(work / "digits", noise=args.noise, seed=0)
                injected = set(folder.flipped)
                times = pipeline(folder.root, work, resolution=32, arch=args.digits_arch, epochs=args.digits_epochs,
                                 n_folds=args.n_folds)
            else:
                files = cifar_imagefolder(work / "cifar10-subset", args.cifar_per_class, args.noise, seed=0)
                injected = {os.path.relpath(f, work / "cifar10-subset" / "train") for f in files}
                times = pipeline(work / "cifar10-subset", work, resolution=64, arch=args.cifar_arch, epochs=args.cifar_epochs,
                                 n_folds=args.n_folds)
            result = scores(work, injected)
            print(f"\n## {name} ({time.strftime('%H:%M')}): {result['n']} images, {result['injected']} injected errors, "
                  f"out-of-sample accuracy vs given labels {result['oos_accuracy_vs_given']:.3f}")
            print(f"flagged (cl_pbnr): {result['flagged']}  precision {result['precision']:.3f}  "
                  f"recall {result['recall']:.3f}  |  top-{result['injected']} precision (= recall) "
                  f"{result['top_k_precision']:.3f}")
            for method, pr in result["methods"].items():
                print(f"  {method:16s} precision {pr['precision']:.3f}  recall {pr['recall']:.3f}")
            print("stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
