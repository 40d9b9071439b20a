"""The report's figures (matplotlib, no display): condition records in, PNG bytes out.

- accuracy curves: test accuracy per epoch (better of the two Co-Teaching networks) per
  method, one panel per condition;
- noise matrices: the realised noise matrix P(given | true) next to the confusion matrix of
  the out-of-sample predictions vs the given labels, one row per condition;
- removed counts: examples each method pruned, with the number of wrong labels in the view
  expected from the realised noise rate.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..common.methods import CL_METHODS
from .logic import method_name, removed_count

#: The paper's subscripted row names as matplotlib mathtext (the Markdown tables keep the plain text).
_MATHTEXT = {"C_{ỹ,y*}": r"$C_{\tilde{y},y^*}$", "C_confusion": r"$C_{\mathrm{confusion}}$"}


def plot_name(method: str) -> str:
    """A method's paper name for a figure, subscripts typeset."""
    name = method_name(method)
    for plain, typeset in _MATHTEXT.items():
        name = name.replace(plain, typeset)
    return name


def _classes(result: Mapping) -> list[str]:
    return list(result["labels"].get("classes") or result["pred_probs"].get("classes") or [])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _grid(n: int, width: float, height: float):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = _pyplot().subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def accuracy_curves(results: Sequence[Mapping]) -> bytes:
    """Test accuracy per epoch of each Co-Teaching run, one panel per condition that has runs."""
    results = [r for r in results if r["runs"]]
    fig, axes = _grid(len(results), 4.5, 3.2)
    for ax, result in zip(axes, results):
        for method, run in result["runs"].items():
            curves = run["curves"]
            acc = np.maximum(curves["test_acc_1"], curves["test_acc_2"])
            ax.plot(curves.get("epoch", range(1, len(acc) + 1)), acc, marker="o", ms=3, label=plot_name(method))
        ax.set_title(result["condition"]["name"], fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _png(fig)


def _heatmap(ax, matrix: np.ndarray, title: str, xlabel: str, ylabel: str, classes: Sequence[str]) -> None:
    image = ax.imshow(matrix, cmap="viridis", vmin=0)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    if len(classes) == len(matrix):
        ax.set_xticks(range(len(classes)), classes, rotation=90)
        ax.set_yticks(range(len(classes)), classes)
    ax.tick_params(labelsize=7)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def noise_matrices(results: Sequence[Mapping]) -> bytes:
    plt = _pyplot()
    fig, axes = plt.subplots(len(results), 2, figsize=(8, 3.6 * len(results)), squeeze=False)
    for (left, right), result in zip(axes, results):
        name = result["condition"]["name"]
        realised = np.asarray(result["labels"]["realised_noise_matrix"])
        _heatmap(
            left,
            realised,
            f"{name}: P(given | true), noise {result['labels']['realised_noise_rate']:.3f}",
            "true label",
            "given label",
            _classes(result),
        )
        confusion = np.asarray(result["pred_probs"]["confusion_matrix"], dtype=float)
        confusion /= np.maximum(confusion.sum(axis=1, keepdims=True), 1)
        _heatmap(
            right,
            confusion,
            f"{name}: out-of-sample argmax | given label (acc. {result['pred_probs']['accuracy']:.3f})",
            "predicted (argmax)",
            "given label",
            _classes(result),
        )
    fig.tight_layout()
    return _png(fig)


def removed_counts(results: Sequence[Mapping]) -> bytes:
    """Removed labels per method: real errors and correct labels stacked where the dataset's labels scored
    them, with the number of real errors (or, without a detection record, the expected number) as a line."""
    fig, axes = _grid(len(results), 4.5, 3.2)
    for ax, result in zip(axes, results):
        methods = [m for m in CL_METHODS if m in result["masks"]["methods"]]
        ticks = range(len(methods))
        found = result.get("detection")
        if found:
            errors = [found["methods"][m]["errors_removed"] for m in methods]
            correct = [found["methods"][m]["removed"] - e for m, e in zip(methods, errors)]
            ax.bar(ticks, errors, color="tab:green", label="real errors")
            ax.bar(ticks, correct, bottom=errors, color="tab:orange", label="correct labels")
            line, what = found["real_errors"], "real errors in the labels"
        else:
            ax.bar(ticks, [removed_count(result, m) for m in methods], color="tab:blue")
            line = result["labels"]["realised_noise_rate"] * result["masks"]["n_examples"]
            what = "expected wrong labels"
        ax.axhline(line, ls="--", color="tab:red", label=f"{what}: {line:,.0f}")
        ax.set_ylim(0, 1.4 * max([line, *(removed_count(result, m) for m in methods)]))  # room for the legend
        ax.set_xticks(ticks, [plot_name(m).removeprefix("CL: ") for m in methods], fontsize=7, rotation=30)
        ax.set_title(f"{result['condition']['name']} ({result['masks']['n_examples']:,} examples)", fontsize=10)
        ax.set_ylabel("removed")
        ax.legend(fontsize=7)
    return _png(fig)


#: (file name, title, renderer) of every figure, in report order.
FIGURES: tuple[tuple[str, str, Callable[[Sequence[Mapping]], bytes]], ...] = (
    ("accuracy_curves.png", "Test accuracy per epoch", accuracy_curves),
    ("noise_matrices.png", "Noise matrices and out-of-sample confusion matrices", noise_matrices),
    ("removed_counts.png", "Labels removed per method (real errors and correct labels)", removed_counts),
)


def figures_of(results: Sequence[Mapping]) -> list[tuple[str, str, Callable[[Sequence[Mapping]], bytes]]]:
    """The figures of :data:`FIGURES` that ``results`` have something for: no accuracy curves without a
    Co-Teaching run (a run that found label errors only)."""
    trained = any(r["runs"] for r in results)
    return [f for f in FIGURES if trained or f[2] is not accuracy_curves]


def render_figures(results: Sequence[Mapping]) -> dict[str, bytes]:
    """File name -> PNG bytes of every figure the results have (:func:`figures_of`)."""
    return {name: render(results) for name, _, render in figures_of(results)}
