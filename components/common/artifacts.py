"""What the stages hand each other: one type per artifact, with its file layout, reading,
writing and the validation of its own contents.

A stage reads its inputs and writes its outputs only through these types, so a file name or a
field of a summary is written in one place, and an artifact is checked the same way by every
reader. The layouts are the seed's published ones (``train_pruned_<method>/train_mask.npy``)
and the ones the tests pin; ``docs/architecture.md`` lists every file and field.

=====================  ====================  ============================================
type                   written by            files
=====================  ====================  ============================================
:class:`NoisyLabels`   noisy-labels          labels.npy, noise_matrix.npy, summary.json
:class:`FoldOutput`    fold-train            indices.npy, pred_probs.npy, labels.npy,
                                             metrics.json (checkpoint.pt while training)
:class:`PredProbs`     combine-folds         pred_probs.npy, labels.npy, summary.json
:class:`Masks`         make-masks            train_pruned_<method>/train_mask.npy,
                                             summary.json; with a dataset also the
                                             :class:`Review`: label_issues.csv,
                                             issues_per_class.csv, noise_matrix.npy,
                                             train_pruned_<method>/cleaned_labels.json
:class:`CoteachRun`    coteach               metrics.json, checkpoint.pt
:class:`ConditionResult` report condition    condition.json
=====================  ====================  ============================================

Vocabulary: N examples (rows of the train view in ImageFolder order), K classes; a keep-mask
is bool (N,), True = keep.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from . import storage
from .checks import check_labels, check_pred_probs, check_same_rows
from .errors import InputError
from .labels import LABEL_FILE_ENDINGS
from .methods import RUN_METHODS

#: The given labels in a stage output (noisy-labels, fold outputs, pred_probs).
LABELS_FILE = "labels.npy"


def labels_url(url: str) -> str:
    """A label file as given, or ``DIR/labels.npy`` of a stage output directory."""
    return url if url.endswith(LABEL_FILE_ENDINGS) else storage.join(url, LABELS_FILE)


def _json_object(output: storage.Output, name: str) -> dict:
    """The JSON object ``name`` of a stage output (read through its manifest)."""
    data = output.load_json(name)
    if not isinstance(data, dict):
        raise InputError(output.url_of(name), "", f"expected a JSON object, got {type(data).__name__}")
    return data


def _require(record: Mapping, keys: Iterable[str], source: str) -> None:
    for key in keys:
        if key not in record:
            raise InputError(source, key, "missing")


def _publish(url: str, files: Mapping[str, bytes], *, stage: str, inputs: Sequence[str]) -> None:
    """Publishes ``files`` (relative name -> content) under ``url`` as an output of ``stage``: all of them
    or none, with a manifest (``storage.staged_output``: refuses a location ``stage`` must not write)."""
    with storage.staged_output(url, stage=stage, inputs=inputs) as tmp:
        for name, data in files.items():
            storage.write_bytes(os.path.join(tmp, *name.split("/")), data)


# --- noisy-labels -----------------------------------------------------------------------------------


@dataclass
class NoisyLabels:
    """Given labels of one condition with what describes their noise (``clpipe noisy-labels``).

    Attributes:
        labels: (N,) int64 given labels of the *whole* train split, ImageFolder order.
        noise_matrix: (K, K) ``P(noisy = i | true = j)``: the generating matrix (generated
            conditions) or the realised one (given label files).
        summary: ``stage, condition, generated, trace, noise_matrix_source, n_examples,
            n_classes, realised_noise_rate, realised_noise_matrix, noise_matrix,
            forget_rate_from_noise, labels_fingerprint, dataset, classes, dataset_fingerprint``.
    """

    labels: np.ndarray
    noise_matrix: np.ndarray
    summary: dict
    STAGE: ClassVar[str] = "noisy-labels"
    SUMMARY: ClassVar[str] = "summary.json"
    NOISE_MATRIX: ClassVar[str] = "noise_matrix.npy"

    def write(self, url: str, inputs: Sequence[str] = ()) -> None:
        _publish(url, {
            LABELS_FILE: storage.npy_bytes(self.labels),
            self.NOISE_MATRIX: storage.npy_bytes(self.noise_matrix),
            self.SUMMARY: storage.json_bytes(self.summary),
        }, stage=self.STAGE, inputs=inputs)

    @classmethod
    def read_summary(cls, url: str) -> dict:
        return cls._summary(storage.open_output(url, stage=cls.STAGE))

    @classmethod
    def _summary(cls, output: storage.Output) -> dict:
        summary = _json_object(output, cls.SUMMARY)
        _require(summary, ("condition", "n_classes", "forget_rate_from_noise"), output.url_of(cls.SUMMARY))
        return summary

    @classmethod
    def read(cls, url: str) -> NoisyLabels:
        output = storage.open_output(url, stage=cls.STAGE)
        summary = cls._summary(output)
        labels = check_labels(output.load_npy(LABELS_FILE, field="labels"), summary["n_classes"],
                              output.url_of(LABELS_FILE))
        return cls(labels, output.load_npy(cls.NOISE_MATRIX, field="noise_matrix"), summary)


# --- fold-train -------------------------------------------------------------------------------------


@dataclass
class FoldOutput:
    """One fold task's out-of-sample predictions (``clpipe fold-train``).

    Attributes:
        source: Where it was read from (named in errors).
        indices: (n_k,) int rows of the train view held out in this fold.
        pred_probs: (n_k, K) float softmax probabilities for those rows.
        labels: (n_k,) int given labels of those rows (so the combined output is self-aligned).
        metrics: ``stage, fold, n_folds, seed, n_examples, n_classes, classes,
            dataset_fingerprint, labels_fingerprint, arch, epochs, batch_size,
            holdout_accuracy, train_time_s, total_time_s, images_per_s, device, ...``.

    While the fold trains, ``checkpoint.pt`` (:data:`CHECKPOINT`) in the output location holds
    its last checkpoint (published with a manifest of its own); the publish of the four files
    replaces it.
    """

    source: str
    indices: np.ndarray
    pred_probs: np.ndarray
    labels: np.ndarray
    metrics: dict
    STAGE: ClassVar[str] = "fold-train"
    METRICS: ClassVar[str] = "metrics.json"
    CHECKPOINT: ClassVar[str] = "checkpoint.pt"
    #: Fields every fold of one cross-validation must agree on.
    AGREED: ClassVar[tuple[str, ...]] = ("n_examples", "n_classes", "n_folds", "dataset_fingerprint",
                                        "labels_fingerprint")

    def validate(self) -> None:
        """Checks the fold's arrays against each other and its metrics (not against other folds)."""
        src = self.source
        for key in ("fold", *self.AGREED):
            if key not in self.metrics:
                raise InputError(src, f"{self.METRICS}: {key}", "missing")
        check_pred_probs(self.pred_probs, src, "pred_probs.npy")
        n_rows = len(self.pred_probs)
        for name, array in (("indices.npy", self.indices), (LABELS_FILE, self.labels)):
            if array.ndim != 1 or len(array) != n_rows or not np.issubdtype(array.dtype, np.integer):
                raise InputError(src, name, f"expected {n_rows} integers (one per pred_probs row), "
                                 f"got {array.dtype} {array.shape}")
        k = self.metrics["n_classes"]
        if self.pred_probs.shape[1] != k:
            raise InputError(src, "pred_probs.npy", f"has {self.pred_probs.shape[1]} columns, "
                             f"{self.METRICS} says {k} classes")
        check_labels(self.labels, k, src, LABELS_FILE)

    def write(self, url: str, inputs: Sequence[str] = ()) -> None:
        _publish(url, {
            "indices.npy": storage.npy_bytes(self.indices),
            "pred_probs.npy": storage.npy_bytes(self.pred_probs.astype(np.float32)),
            LABELS_FILE: storage.npy_bytes(self.labels),
            self.METRICS: storage.json_bytes(self.metrics),
        }, stage=self.STAGE, inputs=inputs)

    @classmethod
    def read(cls, url: str) -> FoldOutput:
        output = storage.open_output(url, stage=cls.STAGE)
        fold = cls(
            source=url,
            indices=output.load_npy("indices.npy", field="indices"),
            pred_probs=output.load_npy("pred_probs.npy", field="pred_probs"),
            labels=output.load_npy(LABELS_FILE, field="labels"),
            metrics=_json_object(output, cls.METRICS),
        )
        fold.validate()
        return fold


# --- combine-folds ----------------------------------------------------------------------------------


@dataclass
class PredProbs:
    """Out-of-sample pred_probs of the whole train view, with its given labels (``clpipe combine-folds``).

    Written by the fold combiner from K fold outputs, or from pre-computed pred_probs (the
    seed's published ``pyx``); read by make-masks and the report.

    Attributes:
        pred_probs: (N, K) float16/32/64, rows in train-view order; the dtype is kept (the
            masks depend on it: float16 holds exact ties).
        labels: (N,) int64 given labels of those rows.
        summary: ``stage, source, n_examples, n_classes, n_folds, classes, training,
            pred_probs_dtype, accuracy, confusion_matrix, folds, dataset_fingerprint,
            labels_fingerprint``.
        source: Where it was read from (named in errors).
    """

    pred_probs: np.ndarray
    labels: np.ndarray
    summary: dict
    source: str = "pred_probs"
    STAGE: ClassVar[str] = "combine-folds"
    FILE: ClassVar[str] = "pred_probs.npy"
    SUMMARY: ClassVar[str] = "summary.json"

    def validate(self) -> None:
        check_pred_probs(self.pred_probs, self.source, self.FILE)
        check_same_rows(len(self.labels), len(self.pred_probs), storage.join(self.source, LABELS_FILE),
                        self.source)
        check_labels(self.labels, self.pred_probs.shape[1], storage.join(self.source, LABELS_FILE))

    def write(self, url: str, inputs: Sequence[str] = ()) -> None:
        _publish(url, {
            self.FILE: storage.npy_bytes(self.pred_probs),
            LABELS_FILE: storage.npy_bytes(self.labels),
            self.SUMMARY: storage.json_bytes(self.summary),
        }, stage=self.STAGE, inputs=inputs)

    @classmethod
    def file_url(cls, url: str) -> str:
        """The ``.npy`` to read: ``url`` itself, or ``url/pred_probs.npy`` for an output directory
        (read through its manifest, also by :func:`storage.load_npy`)."""
        if url.endswith(".npy"):
            return url
        if cls.FILE not in storage.open_output(url, stage=cls.STAGE).files:
            raise InputError(url, cls.FILE, "not found: expected a .npy file or a directory containing it")
        return storage.join(url, cls.FILE)

    @classmethod
    def read_array(cls, url: str) -> np.ndarray:
        """The (N, K) array of a ``.npy`` file or an output directory, checked."""
        file_url = cls.file_url(url)
        pred_probs = storage.load_npy(file_url, field="pred_probs")
        check_pred_probs(pred_probs, file_url)
        return pred_probs

    @classmethod
    def read_summary(cls, url: str) -> dict:
        return cls._summary(storage.open_output(url, stage=cls.STAGE))

    @classmethod
    def _summary(cls, output: storage.Output) -> dict:
        summary = _json_object(output, cls.SUMMARY)
        _require(summary, ("n_examples", "accuracy", "confusion_matrix"), output.url_of(cls.SUMMARY))
        return summary

    @classmethod
    def read(cls, url: str) -> PredProbs:
        output = storage.open_output(url, stage=cls.STAGE)
        result = cls(
            pred_probs=output.load_npy(cls.FILE, field="pred_probs"),
            labels=output.load_npy(LABELS_FILE, field="labels"),
            summary=cls._summary(output),
            source=url,
        )
        result.validate()
        return result


# --- make-masks -------------------------------------------------------------------------------------


@dataclass
class LabelIssues:
    """The ranked review table of make-masks (``label_issues.csv``): one row per example, worst first.

    Columns (:data:`COLUMNS`, then one per method): ``file`` (the image's path or URL, else its
    row name), ``given_label`` and ``suggested_label`` (class *names*; the suggestion is the
    argmax of the out-of-sample pred_probs), ``label_quality`` (cleanlab's
    ``rank.get_label_quality_scores``, self-confidence: 0 = surely wrong, 1 = surely right),
    ``is_label_issue`` (flagged by the summary's ``issue_method``), ``row`` (index in the
    train view, ImageFolder order), and for each method id whether that method flags the row.

    Attributes:
        columns: column name -> (N,) array, rows sorted by ascending ``label_quality``.
        methods: The method columns, in order.
        source: Where it was read from (named in errors).
    """

    columns: dict[str, np.ndarray]
    methods: tuple[str, ...]
    source: str = "label_issues"
    FILE: ClassVar[str] = "label_issues.csv"
    COLUMNS: ClassVar[tuple[str, ...]] = ("file", "given_label", "suggested_label", "label_quality",
                                          "is_label_issue", "row")

    def __len__(self) -> int:
        return len(self.columns["row"])

    def csv_bytes(self) -> bytes:
        header = [*self.COLUMNS, *self.methods]
        flags = set(self.methods) | {"is_label_issue"}
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        values = [self.columns[c].tolist() for c in header]
        for row in zip(*values):
            writer.writerow([int(v) if c in flags else (f"{v:.6g}" if c == "label_quality" else v)
                             for c, v in zip(header, row)])
        return buf.getvalue().encode()

    @classmethod
    def read(cls, url: str) -> LabelIssues:
        """A ``label_issues.csv`` (or the make-masks output holding it), columns checked."""
        file_url = url if url.endswith(".csv") else storage.join(url, cls.FILE)
        text = storage.read_bytes(file_url).decode("utf-8")
        reader = csv.reader(io.StringIO(text))
        header = next(reader, [])
        missing = [c for c in cls.COLUMNS if c not in header]
        if missing:
            raise InputError(file_url, "header", f"missing column(s) {missing}; expected {list(cls.COLUMNS)} "
                             "and one column per method")
        rows = list(reader)
        if any(len(r) != len(header) for r in rows):
            raise InputError(file_url, "", f"every line needs {len(header)} fields")
        raw = dict(zip(header, zip(*rows))) if rows else {c: () for c in header}
        methods = tuple(c for c in header if c not in cls.COLUMNS)
        try:
            columns = {
                "file": np.array(raw["file"], dtype=str),
                "given_label": np.array(raw["given_label"], dtype=str),
                "suggested_label": np.array(raw["suggested_label"], dtype=str),
                "label_quality": np.array(raw["label_quality"], dtype=np.float64),
                "row": np.array(raw["row"], dtype=np.int64),
                **{c: np.array(raw[c], dtype=np.int64).astype(bool) for c in ("is_label_issue", *methods)},
            }
        except ValueError as e:
            raise InputError(file_url, "", f"a value of the wrong type ({e})") from None
        return cls(columns, methods, file_url)


@dataclass
class Review:
    """What a person acts on after make-masks: ranked issues, per-class counts, the noise estimate
    and cleaned labels (written when make-masks knows the dataset's row names and classes).

    Attributes:
        label_issues: The ranked table (``label_issues.csv``).
        per_class: ``issues_per_class.csv`` as column -> list, one row per class.
        noise_matrix: (K, K) estimated ``P(given = i | true = j)`` (cleanlab ``estimate_latent``
            of the calibrated confident joint), rows and columns in class order.
        cleaned_labels: method id -> the seed's JSON (row name -> label) without that method's
            flagged rows: ``train_pruned_<method>/cleaned_labels.json``.
    """

    label_issues: LabelIssues
    per_class: dict[str, list]
    noise_matrix: np.ndarray
    cleaned_labels: dict[str, dict[str, int]]
    PER_CLASS: ClassVar[str] = "issues_per_class.csv"
    NOISE_MATRIX: ClassVar[str] = "noise_matrix.npy"
    CLEANED: ClassVar[str] = "cleaned_labels.json"

    def files(self) -> dict[str, bytes]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(list(self.per_class))
        writer.writerows(zip(*self.per_class.values()))
        files = {
            LabelIssues.FILE: self.label_issues.csv_bytes(),
            self.PER_CLASS: buf.getvalue().encode(),
            self.NOISE_MATRIX: storage.npy_bytes(self.noise_matrix),
        }
        for method, labels in self.cleaned_labels.items():
            files[f"train_pruned_{method}/{self.CLEANED}"] = storage.json_bytes(labels)
        return files


@dataclass
class Masks:
    """Keep-masks of the confident-learning methods (``clpipe make-masks``), the seed's layout.

    Attributes:
        masks: method id -> bool (N,) keep-mask, True = keep.
        summary: ``n_examples, n_classes, semantics, pred_probs_dtype, methods: {id: {paper_name,
            removed, kept, removed_per_class}}``; with a review also ``classes, issue_method,
            n_label_issues, dataset, dataset_fingerprint``.
        review: The files a person reviews, or None (make-masks without a dataset: the seed's
            layout exactly).
    """

    masks: dict[str, np.ndarray]
    summary: dict
    review: Review | None = None
    STAGE: ClassVar[str] = "make-masks"
    SUMMARY: ClassVar[str] = "summary.json"
    MASK_FILE: ClassVar[str] = "train_mask.npy"

    @classmethod
    def mask_path(cls, method: str) -> str:
        """Where the mask of ``method`` lives inside the output: ``train_pruned_<id>/train_mask.npy``."""
        return f"train_pruned_{method}/{cls.MASK_FILE}"

    @classmethod
    def method_of(cls, mask_url: str) -> str | None:
        """The method id of a ``.../train_pruned_<id>/train_mask.npy`` URL, or None."""
        folder = os.path.basename(os.path.dirname(mask_url.rstrip("/")))
        method = folder.removeprefix("train_pruned_")
        return method if folder.startswith("train_pruned_") and method in RUN_METHODS else None

    def write(self, url: str, inputs: Sequence[str] = ()) -> None:
        files = {self.mask_path(m): storage.npy_bytes(keep) for m, keep in self.masks.items()}
        if self.review is not None:
            files.update(self.review.files())
        files[self.SUMMARY] = storage.json_bytes(self.summary)
        _publish(url, files, stage=self.STAGE, inputs=inputs)

    @classmethod
    def mask_url(cls, url: str, method: str) -> str:
        """The mask file of ``method`` in the make-masks output at ``url`` (which must list it)."""
        output = storage.open_output(url, stage=cls.STAGE)
        name = cls.mask_path(method)
        if name not in output.files:
            raise InputError(output.url_of(name), "", f"not found (make-masks writes "
                             f"DIR/{cls.mask_path('<method>')}; {url} holds {sorted(output.files)[:10]})")
        return output.url_of(name)

    @classmethod
    def read_summary(cls, url: str) -> dict:
        output = storage.open_output(url, stage=cls.STAGE)
        summary = _json_object(output, cls.SUMMARY)
        _require(summary, ("n_examples", "methods"), output.url_of(cls.SUMMARY))
        return summary


# --- coteach ----------------------------------------------------------------------------------------


@dataclass
class CoteachRun:
    """One Co-Teaching run (``clpipe coteach``): metrics after every epoch, a checkpoint to resume, and
    once complete the better network as an exported model in ``model/`` (``model.safetensors`` and
    ``model.json``, :mod:`.model_files`; ``clpipe predict --model OUT/model``).

    Attributes:
        metrics: ``stage, method, recipe, seed, epochs, epochs_done, complete, n_train, n_test,
            n_test_exact, curves, final, best, time_s, ...`` (docs/architecture.md).
    """

    metrics: dict
    STAGE: ClassVar[str] = "coteach"
    METRICS: ClassVar[str] = "metrics.json"
    CHECKPOINT: ClassVar[str] = "checkpoint.pt"
    MODEL: ClassVar[str] = "model"

    @classmethod
    def read(cls, url: str) -> CoteachRun:
        return cls(_json_object(storage.open_output(url, stage=cls.STAGE), cls.METRICS))


# --- report -----------------------------------------------------------------------------------------


@dataclass
class ConditionResult:
    """One condition's record joining its stage outputs (``clpipe report condition``)."""

    record: dict[str, Any] = field(default_factory=dict)
    STAGE: ClassVar[str] = "report condition"
    FILE: ClassVar[str] = "condition.json"

    def write(self, url: str, inputs: Sequence[str] = ()) -> None:
        _publish(url, {self.FILE: storage.json_bytes(self.record)}, stage=self.STAGE, inputs=inputs)

    @classmethod
    def read(cls, url: str) -> ConditionResult:
        return cls(_json_object(storage.open_output(url, stage=cls.STAGE), cls.FILE))
