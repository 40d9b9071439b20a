"""Which splits a dataset has: whether a test split sits beside the train split.

Co-Teaching is scored on the test split, so a dataset without one can still have its label errors
found (cross-validation uses the train split alone) but trains no model. The pipeline asks this when
it is built (``pipelines/pipeline.py`` ``runs_coteach``) and the report stage when a condition has no
Co-Teaching run (to say why).
"""

from __future__ import annotations

from .datasets import resolve_split_url
from .errors import InputError


def has_test_split(dataset: str) -> bool:
    """Whether ``dataset`` (a path or URL; it must exist) holds a test split beside its train split.

    Only a root has one: ``ROOT/test/`` or one ``ROOT/*test.npz`` / ``*test.csv`` / ``*test.jsonl``
    (:func:`~.datasets.resolve_split_url`). A single ``.npz``, manifest or packed split is the train
    split alone, as ``clpipe data prepare`` reads it. Reads a listing, no image.
    """
    try:
        return resolve_split_url(dataset, "test") != dataset
    except InputError as e:
        if e.source != dataset or e.field != "test":  # the dataset itself is missing or unreadable
            raise
        return False
