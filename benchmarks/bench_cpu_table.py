"""A CPU-sized Table 2 through the real stages, and the label errors found in every published condition.

Two steps, each writing a CSV under ``docs/results/`` and its own marked section of ``docs/reproduction.md``:

``detection`` (minutes): for each of the 13 published conditions that have ``pred_probs`` (0/0 and S in
{0, .2, .4, .6} x N in {.2, .4, .6}), noisy-labels (the published label file, checked) -> combine-folds (the
published pred_probs) -> make-masks (the five methods, 50,000 rows), then the report's own reader and pure
detection function (``components/report``: ``cli.read_detection``, ``detection.detection``,
``detection.detection_rows``, ``detection.detection_markdown``): per method the rows removed, the real errors
among them (given label != CIFAR-10 label), precision and recall. This part is exact at full scale.

``table`` (the default; about 45 minutes on 2 shared cores at the defaults): for each of the paper's noise
columns (20 %, 40 %, 70 %: the seed's N = 0.2, 0.4, 0.6) at one sparsity, this runs the stages' own entry points
one after another, as the pipeline's given-pred-probs kind does:

    noisy-labels (the published label file, checked)  -> combine-folds (the published pred_probs, whole split)
    -> make-masks (the five confident-learning methods, 50,000 rows)
    -> coteach x 6 (no pruning and one run per mask, the whole-split masks cut to a class-stratified subset)

Co-Teaching keeps the paper's recipe shape (``feb2020``: Adam, forget-rate ramp to 0.2, lr decay and beta1
switch from 80/250 of the schedule, the paper's class weights, dropout, crop+flip) with the schedule
compressed to ``--epochs`` (the decay start and the ramp scaled with it), on ``--per-class`` training images
per class and a ``--width``-wide CNN (the paper: 128). Every stage writes its usual output under ``--out``, so a
rerun resumes (a finished Co-Teaching run only rewrites its metrics; an interrupted one continues from its
checkpoint).

It then writes ``--csv`` (one row per noise column and method: our final-epoch accuracy next to the paper's) and
the section between the ``cpu-table`` markers of ``--doc`` (appended when the markers are missing): the table,
for each noise column whether every CL method beats no pruning (the paper's claim) and the Spearman rank
correlation of the six methods with the paper's column, and the provenance (date, machine, command, wall time).

    OMP_NUM_THREADS=1 nohup nice -n 10 .venv/bin/python benchmarks/bench_cpu_table.py table \\
        --noises 0.4 0.6 0.2 > runs/cpu-table.log 2>&1 &

The noise columns appear in noise order, whatever order they ran in (the first ones run finish first, so a
partial run keeps the most telling columns). Every stage output is kept under ``--out``: a rerun with more
``--noises`` trains only what is new.

    .venv/bin/python benchmarks/bench_cpu_table.py detection                               # 13 conditions
    .venv/bin/python benchmarks/bench_cpu_table.py --noises 0.4 --per-class 10 --test-per-class 5 --epochs 2 \\
        --width 4 --batch-size 16 --out /tmp/cpu-table-tiny --csv /tmp/cpu-table-tiny.csv \\
        --doc /tmp/cpu-table-tiny.md                                                          # the wiring, < 1 min

One long job at a time: the machine is shared.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from clpipe.components.common.tables import csv_text, three_places

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
NOISES = (0.4, 0.6, 0.2)  # run order: the demo's condition first, then the column where pruning matters most
TABLE_SECTION = "cpu-table"
DETECTION_SECTION = "detection-published"
CSV_FIELDS = (
    "noise_column",
    "noise",
    "sparsity",
    "method",
    "paper_name",
    "n_view",
    "n_train",
    "real_noise_in_train",
    "removed_full_scale",
    "epochs_trained",
    "n_test",
    "final_test_acc",
    "best_test_acc",
    "paper_test_acc",
    "time_s",
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", nargs="?", choices=("table", "detection"), default="table")
    p.add_argument("--sparsity", type=float, default=0.2, help="table: the one sparsity S (0, 0.2, 0.4, 0.6)")
    p.add_argument(
        "--noises",
        type=float,
        nargs="+",
        default=NOISES,
        help="table: noise amounts N, in run order (0.6 = the 70 %% column)",
    )
    # The defaults: benchmarks/tune_demo.py's feb2020 setting (docs/benchmarks.md: 200 per class, width 8,
    # batch 32, lr 0.003, 25 epochs: no pruning 0.268, CL: PBNR 0.313 at 40 % noise), cut to 20 epochs so that
    # 3 columns x 6 runs fit about 45 minutes on one shared core (12 s per epoch of 2,000 images, measured).
    p.add_argument("--per-class", type=int, default=200, help="training images per class (fixed subset)")
    p.add_argument("--test-per-class", type=int, default=200, help="test images per class")
    p.add_argument("--subset-seed", type=int, default=0)
    p.add_argument(
        "--epochs", type=int, default=20, help="schedule length (feb2020: 250; trains epochs 1..E-1)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--width", type=int, default=8, help="base width of the 9-layer CNN (paper: 128)")
    p.add_argument(
        "--eval-every", type=int, default=10, help="score the test set every N epochs and the last"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default=str(DATA), help="folder with cifar10/ and cl-reproduce/")
    p.add_argument("--out", default=str(REPO / "runs" / "cpu-table"), help="the stages' outputs (resumable)")
    p.add_argument(
        "--csv", default=None, help="default: docs/results/cpu-table.csv or detection-published.csv"
    )
    p.add_argument("--doc", default=str(REPO / "docs" / "reproduction.md"))
    args = p.parse_args(argv)
    if args.csv is None:
        name = "cpu-table.csv" if args.step == "table" else "detection-published.csv"
        args.csv = str(REPO / "docs" / "results" / name)
    return args


def scaled_schedule(epochs: int) -> dict[str, int]:
    """The feb2020 schedule's shape at ``epochs``: decay from 80/250 of it, a ramp of 10/250 (at least 1)."""
    return {
        "epoch_decay_start": max(1, round(epochs * 80 / 250)),
        "num_gradual": max(1, round(epochs * 10 / 250)),
    }


def condition_name(noise: float, sparsity: float) -> str:
    return f"n{noise:g}-s{sparsity:g}"


def prepare_condition(args, noise: float, sparsity: float, stages) -> Path:
    """noisy-labels -> combine-folds (given pred_probs) -> make-masks for one published condition; its folder.

    A stage's output appears whole or not at all, so a folder that exists is finished and is not redone.
    """
    from clpipe.fetch import published_names

    out = Path(args.out) / condition_name(noise, sparsity)
    labels_name, pyx_name = published_names(noise, sparsity)
    published = Path(args.data) / "cl-reproduce"
    condition = {
        "name": condition_name(noise, sparsity),
        "noise": noise,
        "sparsity": sparsity,
        "labels": str(published / labels_name),
        "pred_probs": str(published / pyx_name),
    }
    for folder, call in (
        (
            "labels",
            lambda d: stages.noisy_labels(dataset=stages.dataset, condition=json.dumps(condition), out=d),
        ),
        (
            "pred_probs",
            lambda d: stages.combine_folds(
                given_pred_probs=condition["pred_probs"],
                dataset=stages.dataset,
                labels=str(out / "labels"),
                out=d,
            ),
        ),
        (
            "masks",
            lambda d: stages.make_masks(
                labels=str(out / "pred_probs" / "labels.npy"), pred_probs=str(out / "pred_probs"), out=d
            ),
        ),
    ):
        if not (out / folder).exists():
            call(str(out / folder))
    return out


# --- detection: every published condition, full scale ------------------------------------------------------


def detection_results(args, stages, log) -> tuple[list[dict], set[str]]:
    """One report-style record (``condition``, ``detection``) per published condition, in noise order, and the
    mask semantics they were made with."""
    from clpipe.fetch import CL_REPRODUCE_FILES

    results, semantics = [], set()
    for s, n in sorted(CL_REPRODUCE_FILES, key=lambda sn: (float(sn[1]), float(sn[0]))):
        noise, sparsity = float(n), float(s)
        out = prepare_condition(args, noise, sparsity, stages)
        masks = json.loads((out / "masks" / "summary.json").read_text())
        semantics.add(masks["semantics"])
        found = stages.read_detection(stages.dataset, str(out / "labels"), str(out / "masks"), masks, 0, 0)
        results.append(
            {
                "condition": {"name": condition_name(noise, sparsity), "noise": noise, "sparsity": sparsity},
                "detection": found,
            }
        )
        log(
            f"{condition_name(noise, sparsity)}: {found['real_errors']} real errors; "
            + ", ".join(
                f"{m} {d['removed']} removed, precision {d['precision'] or 0:.3f}"
                for m, d in found["methods"].items()
            )
        )
    return results, semantics


def shown(path: str) -> str:
    """``path`` relative to the repository when it lies inside it."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else path


def detection_section(results: list[dict], semantics: set[str], stages, provenance: dict) -> str:
    """The Markdown section of the detection step: the report's own table, with what it means."""
    return "\n".join(
        [
            "### Label errors found in the published conditions (`benchmarks/bench_cpu_table.py detection`)",
            "",
            (
                "Exact, at full scale: for each of the 13 published conditions with `pred_probs` (the paper's Table 2 "
                "uses the 12 with noise; 0/0 is the noise-free control, where every removed row is a correct label), "
                "make-masks on the published out-of-sample `pred_probs` of all 50,000 training images, and the removed "
                "rows of each method scored against the true CIFAR-10 labels by the report's own detection function. "
                "*precision* = real errors among the removed rows / removed rows; *recall* = real errors removed / all "
                "real errors. Condition `nN-sS`: noise amount N (0.6 = the paper's 70 % column), sparsity S. "
                f"Mask semantics: {', '.join(sorted(semantics))} (make-masks' default, what `clpipe run` and its "
                "report use). The paper prints no such table: this is the quality of the step its Co-Teaching "
                "trained on."
            ),
            "",
            stages.detection_markdown(results),
            "",
            (
                f"Provenance: {provenance['date']}, {provenance['machine']}; commit `{provenance['commit']}`; "
                f"`{provenance['command']}`; wall time {provenance['wall_s']:.0f} s. Rows: "
                f"`{shown(provenance['csv'])}`."
            ),
        ]
    )


# --- table: Co-Teaching on a subset --------------------------------------------------------------------------


def run_condition(args, noise: float, stages, log) -> list[dict]:
    """One noise column through the stages; returns one CSV row per method."""
    out = prepare_condition(args, noise, args.sparsity, stages)
    name = out.name
    masks = json.loads((out / "masks" / "summary.json").read_text())
    noise_in_train = stages.noise_in_train(str(out / "labels"), str(out / "masks"), args)
    rows = []
    for method in stages.RUN_METHODS_IN_TABLE_ORDER:
        started = time.perf_counter()
        run = stages.coteach(
            dataset=stages.dataset,
            train_labels=str(out / "labels"),
            out=str(out / f"coteach-{method}"),
            train_mask=None if method == "none" else str(out / "masks"),
            method=method,
            recipe="feb2020",
            seed=args.seed,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            cnn_width=args.width,
            subset_per_class=args.per_class,
            subset_seed=args.subset_seed,
            test_subset_per_class=args.test_per_class,
            test_subset_seed=args.subset_seed,
            device="cpu",
            eval_every=args.eval_every,
            checkpoint_every=args.eval_every,
            progress=False,
            **scaled_schedule(args.epochs),
        ).metrics
        log(
            f"{name} {method:>16}: final {run['final']['test_acc']:.4f} on {run['n_train']} rows "
            f"({time.perf_counter() - started:.0f} s)"
        )
        rows.append(table_row(noise, args.sparsity, method, run, masks, noise_in_train[method], stages))
    return rows


def table_row(
    noise: float, sparsity: float, method: str, run: dict, masks: dict, noise_in_train: float, stages
) -> dict:
    return {
        "noise_column": stages.noise_label(noise, noise),
        "noise": noise,
        "sparsity": sparsity,
        "method": method,
        "paper_name": stages.method_name(method),
        "n_view": run["n_view"],
        "n_train": run["n_train"],
        "real_noise_in_train": round(noise_in_train, 4),
        "removed_full_scale": 0 if method == "none" else masks["methods"][method]["removed"],
        "epochs_trained": run["epochs_done"],
        "n_test": run["n_test"],
        "final_test_acc": run["final"]["test_acc"],
        "best_test_acc": run["best"]["test_acc"],
        "paper_test_acc": stages.paper_accuracy(method, noise, sparsity),
        "time_s": round(run["time_s"], 1),
    }


def in_noise_order(rows: list[dict]) -> list[dict]:
    """The rows with the noise columns in increasing noise, methods in table order within each."""
    return sorted(rows, key=lambda r: r["noise"])  # stable: the methods keep their order


def verdicts(rows: list[dict]) -> list[dict]:
    """Per noise column: does every CL method beat no pruning, and the rank correlation with the paper.

    The Spearman correlation is undefined (None) when either column is constant or a paper value is missing.
    """
    import numpy as np
    from scipy.stats import spearmanr

    found = []
    for column in dict.fromkeys(r["noise_column"] for r in in_noise_order(rows)):
        cells = [r for r in rows if r["noise_column"] == column]
        base = next(r for r in cells if r["method"] == "none")
        cl = [r for r in cells if r["method"] != "none"]
        ours, paper = [r["final_test_acc"] for r in cells], [r["paper_test_acc"] for r in cells]
        rho = None
        if None not in paper and len(set(ours)) > 1 and len(set(paper)) > 1:
            rho = float(spearmanr(ours, paper).statistic)
        found.append(
            {
                "column": column,
                "beats": sum(r["final_test_acc"] > base["final_test_acc"] for r in cl),
                "n_cl": len(cl),
                "paper_beats": sum(
                    r["paper_test_acc"] > base["paper_test_acc"] for r in cl if r["paper_test_acc"]
                ),
                "mean_gain": float(np.mean([r["final_test_acc"] - base["final_test_acc"] for r in cl])),
                "paper_mean_gain": (
                    None
                    if None in paper
                    else float(np.mean([r["paper_test_acc"] - base["paper_test_acc"] for r in cl]))
                ),
                "rho": rho,
            }
        )
    return found


def table_csv(rows: list[dict]) -> str:
    return csv_text(rows, CSV_FIELDS)


def _points(value) -> str:
    return "-" if value is None else f"{100 * value:+.1f}"


def table_section(rows: list[dict], args, provenance: dict, complete: bool) -> str:
    """The Markdown section of the table step."""
    rows = in_noise_order(rows)
    columns = list(dict.fromkeys(r["noise_column"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["noise_column"], r["method"]): r for r in rows}
    first = rows[0]
    schedule = scaled_schedule(args.epochs)
    lines = [
        f"### A CPU-sized Table 2 (`benchmarks/bench_cpu_table.py`, sparsity {args.sparsity:g})",
        "",
        (
            "**Evidence that the chain works, not a reproduction of the paper's numbers.** The real stages (published "
            "labels and pred_probs -> make-masks on all 50,000 rows -> Co-Teaching), with Co-Teaching cut to what a "
            f"shared 2-core CPU trains in under an hour: {first['n_view']:,} training images ({args.per_class} per "
            f"class, a fixed class-stratified subset, seed {args.subset_seed}; the full-scale masks cut to it), "
            f"{first['n_test']:,} test images ({args.test_per_class} per class), the paper's `feb2020` recipe shape "
            f"compressed to {args.epochs} epochs ({first['epochs_trained']} trained; lr decay and beta1 switch from "
            f"epoch {schedule['epoch_decay_start']}, forget-rate ramp of {schedule['num_gradual']} epoch(s) to 0.2, "
            f"the paper's class weights), the 9-layer CNN at width {args.width} (the paper: 128), batch "
            f"{args.batch_size}, lr {args.lr}, "
            f"seed {args.seed}. The paper trained 250 epochs on all kept images of 50,000 with the full-width CNN; "
            "its numbers are in parentheses. Final-epoch accuracy of the better network, as the paper reports. One "
            "seed per cell; with this many test images an accuracy carries up to "
            f"+-{100 * 1.96 * (0.25 / max(1, first['n_test'])) ** 0.5:.1f} points of sampling error (95 %)."
        ),
        "",
    ]
    if not complete:
        asked = ", ".join(f"N={n:g}" for n in args.noises)
        lines += [f"**Partial**: only the columns shown had finished (asked for: {asked}).", ""]
    lines += [
        "| method | " + " | ".join(f"{c} noise" for c in columns) + " |",
        "|:---|" + "---:|" * len(columns),
    ]
    for method in methods:
        cells = [
            _cell(
                cell.get((c, method)), lambda r: f"{three_places(r['final_test_acc'])} ({three_places(r['paper_test_acc'])})"
            )
            for c in columns
        ]
        lines.append(f"| {first_named(cell, columns, method)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Training rows per run (kept of the subset) and the real label noise among them:",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|:---|" + "---:|" * len(columns),
    ]
    for method in methods:
        cells = [
            _cell(cell.get((c, method)), lambda r: f"{r['n_train']:,}, {r['real_noise_in_train']:.0%} wrong")
            for c in columns
        ]
        lines.append(f"| {first_named(cell, columns, method)} | " + " | ".join(cells) + " |")
    lines += ["", "Ordering against the paper's (final-epoch accuracy):", ""]
    for v in verdicts(rows):
        rho = "not defined" if v["rho"] is None else f"{v['rho']:+.2f}"
        lines.append(
            f"- {v['column']} noise: {v['beats']} of {v['n_cl']} CL methods beat Co-Teaching without "
            f"pruning (the paper: {v['paper_beats']} of {v['n_cl']}); mean gain of the CL methods "
            f"{_points(v['mean_gain'])} points (the paper: {_points(v['paper_mean_gain'])}); Spearman "
            f"rank correlation of the six methods with the paper's column: {rho}."
        )
    lines += [
        "",
        (
            f"Provenance: {provenance['date']}, {provenance['machine']}; commit `{provenance['commit']}`; "
            f"`{provenance['command']}`; wall time {provenance['wall_s'] / 60:.0f} min (load average "
            f"{provenance['load_start']:.1f} at the start, {provenance['load_end']:.1f} at the end); Co-Teaching task "
            f"time {sum(r['time_s'] for r in rows) / 60:.0f} min. Cells: `{shown(args.csv)}`."
        ),
    ]
    return "\n".join(lines)


def _cell(row: dict | None, text) -> str:
    return "-" if row is None else text(row)


def first_named(cell: dict, columns: list[str], method: str) -> str:
    return next(cell[(c, method)]["paper_name"] for c in columns if (c, method) in cell)


# --- the doc, the provenance --------------------------------------------------------------------------------


def markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- {name}:begin (benchmarks/bench_cpu_table.py writes this section) -->",
        f"<!-- {name}:end -->",
    )


def replace_section(doc: Path, name: str, text: str) -> None:
    """Puts ``text`` between the ``name`` markers of ``doc`` (appended, with the markers, when they are missing)."""
    begin, end = markers(name)
    text = f"{begin}\n{text}\n{end}"
    old = doc.read_text() if doc.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + text + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text + "\n"
    doc.write_text(new)


def machine() -> str:
    """The CPU model, cores and memory, as the OS reports them (Linux)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        memory = float("nan")
    return (
        f"{os.cpu_count()}-core {model} VM, {memory:.0f} GiB, no GPU, shared with other jobs, "
        f"torch on the CPU with OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )


def provenance(started: float, load_start: float) -> dict:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "commit": commit or "unknown",
        "command": "python benchmarks/bench_cpu_table.py " + shlex.join(sys.argv[1:]),
        "wall_s": time.perf_counter() - started,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
    }


class Stages:
    """The stage entry points and report helpers, imported once at the start.

    Imported before the first run on purpose: the benchmark runs for an hour in the background while the
    working tree may change; every module it uses (torch-using ones included) is loaded at the start.
    """

    def __init__(self, data: str) -> None:
        import scipy.stats  # noqa: F401
        from clpipe.components.combine_folds.stage import combine_folds
        from clpipe.components.common.artifacts import LABELS_FILE, Masks
        from clpipe.components.common.datasets import open_split, subset_rows
        from clpipe.components.common.methods import CL_METHODS, NO_PRUNING
        from clpipe.components.coteach import checkpoint, loop, method, stage  # noqa: F401 (loaded now)
        from clpipe.components.make_masks.stage import make_masks
        from clpipe.components.noisy_labels.stage import noisy_labels
        from clpipe.components.report.cli import read_detection
        from clpipe.components.report.detection import detection_csv, detection_markdown, detection_rows
        from clpipe.components.report.logic import method_name, noise_label, paper_accuracy

        self.dataset = str(Path(data) / "cifar10")
        self.noisy_labels, self.combine_folds, self.make_masks = noisy_labels, combine_folds, make_masks
        self.coteach = stage.coteach
        self.read_detection, self.detection_rows = read_detection, detection_rows
        self.detection_csv, self.detection_markdown = detection_csv, detection_markdown
        self.method_name, self.noise_label, self.paper_accuracy = method_name, noise_label, paper_accuracy
        self.RUN_METHODS_IN_TABLE_ORDER = (*CL_METHODS, NO_PRUNING)
        self._open_split, self._subset_rows, self._masks, self._labels_file = (
            open_split,
            subset_rows,
            Masks,
            LABELS_FILE,
        )

    def noise_in_train(self, labels: str, masks: str, args) -> dict[str, float]:
        """Per method: the fraction of wrong given labels among the subset rows Co-Teaching trains on."""
        import numpy as np

        split = self._open_split(self.dataset, "train")
        rows = self._subset_rows(split.labels, args.per_class, args.subset_seed)
        wrong = np.load(os.path.join(labels, self._labels_file))[rows] != split.labels[rows]
        found = {"none": float(wrong.mean())}
        for method in self.RUN_METHODS_IN_TABLE_ORDER[:-1]:
            keep = np.load(self._masks.mask_url(masks, method))[rows]
            found[method] = float(wrong[keep].mean()) if keep.any() else float("nan")
        return found


def main(argv=None) -> None:
    args = parse_args(argv)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    stages = Stages(args.data)

    def log(text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    log(
        f"bench_cpu_table: {' '.join(sys.argv[1:]) or 'defaults'}; load {load_start:.1f}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    if args.step == "detection":
        results, semantics = detection_results(args, stages, log)
        Path(args.csv).write_text(stages.detection_csv(stages.detection_rows(results)))
        replace_section(
            Path(args.doc),
            DETECTION_SECTION,
            detection_section(
                results, semantics, stages, {**provenance(started, load_start), "csv": args.csv}
            ),
        )
    else:
        rows = []
        for i, noise in enumerate(args.noises):
            rows += run_condition(args, noise, stages, log)
            Path(args.csv).write_text(table_csv(in_noise_order(rows)))  # what finished so far
            replace_section(
                Path(args.doc),
                TABLE_SECTION,
                table_section(
                    rows, args, provenance(started, load_start), complete=i == len(args.noises) - 1
                ),
            )
        for v in verdicts(rows):
            log(f"{v['column']}: {v['beats']}/{v['n_cl']} CL methods beat no pruning; rho {v['rho']}")
    log(f"wrote {args.csv} and the section of {args.doc} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
