"""Appends the cells of a GPU session (its ``cells.csv``) to the ledger ``docs/results/gpu.csv``.

The ledger accumulates every GPU figure any session measured (issue 12): rows are only ever appended,
a row already in the ledger (same date, device, commit, recipe, condition, method) is not added twice,
and nothing is rewritten. Columns: date, device, commit, recipe, condition, method, accuracy, epoch,
complete, seconds, paper.

    python benchmarks/gpu_ledger.py SESSION_DIR/cells.csv [--ledger docs/results/gpu.csv]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

LEDGER = Path(__file__).resolve().parents[1] / "docs" / "results" / "gpu.csv"
COLUMNS = ("date", "device", "commit", "recipe", "condition", "method", "accuracy", "epoch", "complete", "seconds",
           "paper")
KEY = COLUMNS[:6]


def append(cells: Path, ledger: Path = LEDGER) -> int:
    """Adds the rows of ``cells`` that the ledger lacks; returns how many were added."""
    existing = list(csv.DictReader(ledger.open())) if ledger.exists() else []
    seen = {tuple(row[k] for k in KEY) for row in existing}
    new = [row for row in csv.DictReader(cells.open()) if tuple(row.get(k, "") for k in KEY) not in seen]
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        if not existing:
            writer.writeheader()
        writer.writerows(new)
    return len(new)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cells", type=Path, help="a session's cells.csv")
    p.add_argument("--ledger", type=Path, default=LEDGER)
    args = p.parse_args()
    print(f"{append(args.cells, args.ledger)} rows appended to {args.ledger}")


if __name__ == "__main__":
    main()
