"""Time ``make-masks`` on the 13 published CIFAR-10 conditions, both semantics.

For each condition and mode: the whole CLI (read the noisy-label JSON.gz and the float16
pyx, validate, 5 methods, write 5 masks + summary.json) and the computation alone
(``make_masks``), median of ``--repeats`` runs. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_masks.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile

import numpy as np
from clpipe.components.common.labels import load_labels_in_file_order
from clpipe.components.make_masks.cli import main as make_masks_cli
from clpipe.components.make_masks.logic import COMPAT_2021, make_masks
from timing import DATA, median_seconds

CL_REPRODUCE = DATA / "cl-reproduce"
CONDITIONS = [(s, n) for s in ("0.0", "0.2", "0.4", "0.6") for n in ("0.2", "0.4", "0.6")] + [("0.0", "0.0")]
MODES = {"cleanlab-2.9": None, "cleanlab-2021": COMPAT_2021}


def inputs(sparsity: str, noise: str) -> tuple[str, str]:
    stem = f"frac_zero_noise_rates__{sparsity}__noise_amount__{noise}"
    return str(CL_REPRODUCE / f"cifar10_noisy_labels__{stem}.json.gz"), str(CL_REPRODUCE / f"pyx__{stem}.npy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    make_masks(*_arrays(*inputs("0.0", "0.0")))  # import cleanlab once, outside the timings
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}; "
          f"median of {args.repeats}")
    print(f"{'condition':>10} | {'2.9 CLI':>8} {'2.9 calc':>8} | {'2021 CLI':>8} {'2021 calc':>9}  (seconds)")
    totals = {(mode, part): 0.0 for mode in MODES for part in ("cli", "calc")}
    with tempfile.TemporaryDirectory() as tmp:
        for sparsity, noise in CONDITIONS:
            labels_url, pyx_url = inputs(sparsity, noise)
            labels, pred_probs = _arrays(labels_url, pyx_url)
            row = []
            for mode, compat in MODES.items():
                argv = ["--labels", labels_url, "--pred-probs", pyx_url, "--out", f"{tmp}/out"]
                argv += ["--compat", compat] if compat else []
                cli = median_seconds(lambda: _check(make_masks_cli(argv)), args.repeats)
                calc = median_seconds(lambda: make_masks(labels, pred_probs, compat=compat), args.repeats)
                totals[mode, "cli"] += cli
                totals[mode, "calc"] += calc
                row += [cli, calc]
            print(f"{sparsity + '/' + noise:>10} | {row[0]:8.3f} {row[1]:8.3f} | {row[2]:8.3f} {row[3]:9.3f}")
    print(f"{'total':>10} | {totals['cleanlab-2.9', 'cli']:8.2f} {totals['cleanlab-2.9', 'calc']:8.2f} | "
          f"{totals['cleanlab-2021', 'cli']:8.2f} {totals['cleanlab-2021', 'calc']:9.2f}")


def _arrays(labels_url: str, pyx_url: str) -> tuple[np.ndarray, np.ndarray]:
    return load_labels_in_file_order(labels_url, 10), np.load(pyx_url)


def _check(exit_code: int) -> None:
    if exit_code != 0:
        raise SystemExit(f"make-masks failed with exit code {exit_code}")


if __name__ == "__main__":
    main()
