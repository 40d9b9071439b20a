"""Tables as text: the CSV files and the fixed-precision cells every report and command writes alike."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence


def csv_text(rows: Iterable[Mapping], fields: Sequence[str]) -> str:
    """``rows`` as CSV with a header of ``fields`` (in that order), ``\\n`` line ends on every platform."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def three_places(value: float | None) -> str:
    """A fraction (accuracy, precision, recall) as a table cell: 3 decimals, ``-`` when there is none."""
    return "-" if value is None else f"{value:.3f}"
