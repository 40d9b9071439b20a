"""make-masks through its CLI: the seed's layout, summary.json, exit code 2 and no output on bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import fsspec
import numpy as np
import pytest
from clpipe.components.common import storage
from clpipe.components.make_masks.cli import main
from clpipe.components.make_masks.logic import ALL_METHODS, PAPER_NAMES

from clpipe.cli import main as clpipe_main

REPO = Path(__file__).resolve().parents[2]
CL_REPRODUCE = REPO / ".." / "shared" / "data" / "cl-reproduce"
FACTS = REPO / "tests" / "make_masks" / "published_mask_facts.json"
STEM = "frac_zero_noise_rates__0.4__noise_amount__0.4"
SEED_LABELS = str(CL_REPRODUCE / f"cifar10_noisy_labels__{STEM}.json.gz")
SEED_PYX = str(CL_REPRODUCE / f"pyx__{STEM}.npy")


@pytest.fixture
def small_inputs(tmp_path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A combine-folds output (pred_probs.npy + labels.npy, with a manifest) and a labels .npy, N=200, K=3."""
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 3
    logits = rng.normal(size=(200, 3))
    logits[np.arange(200), labels] += 2.0
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    combined = tmp_path / "combined"
    with storage.staged_output(str(combined), stage="combine-folds") as tmp:
        np.save(Path(tmp) / "pred_probs.npy", probs)
        np.save(Path(tmp) / "labels.npy", labels)
    np.save(tmp_path / "labels.npy", labels)
    return combined, tmp_path / "labels.npy", labels, probs


def _sha(keep: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(keep).tobytes()).hexdigest()


def test_seed_inputs_give_the_seed_layout_and_reference_masks(tmp_path):
    out = tmp_path / "masks"
    assert clpipe_main(["make-masks", "--labels", SEED_LABELS, "--pred-probs", SEED_PYX,
                        "--out", str(out), "--compat", "cleanlab-2021"]) == 0
    expected_entries = ["clpipe-manifest.json", "summary.json", *(f"train_pruned_{m}" for m in ALL_METHODS)]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected_entries)
    reference = json.loads(FACTS.read_text())["reference_2021"]["masks"]["0.4/0.4"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_examples"] == 50000 and summary["n_classes"] == 10
    assert summary["semantics"] == "cleanlab-2021" and summary["pred_probs_dtype"] == "float16"
    for method in ALL_METHODS:
        keep = np.load(out / f"train_pruned_{method}" / "train_mask.npy")
        assert keep.dtype == bool and keep.shape == (50000,)
        assert _sha(keep) == reference[method]["sha256_packbits"]
        counts = summary["methods"][method]
        assert counts["paper_name"] == PAPER_NAMES[method]
        assert counts["kept"] == int(keep.sum()) and counts["removed"] == 50000 - counts["kept"]
        assert len(counts["removed_per_class"]) == 10
        assert sum(counts["removed_per_class"]) == counts["removed"]


def test_combiner_directory_and_method_subset(small_inputs, tmp_path):
    combined, labels_npy, labels, probs = small_inputs
    out = tmp_path / "masks"
    assert main(["--labels", str(labels_npy), "--pred-probs", str(combined), "--out", str(out),
                 "--methods", "cl_both,argmax", "cl_pbc"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["methods"]) == ["cl_both", "argmax", "cl_pbc"]
    assert summary["semantics"] == "cleanlab-2.9" and summary["pred_probs_dtype"] == "float32"
    argmax_keep = np.load(out / "train_pruned_argmax" / "train_mask.npy")
    assert np.array_equal(argmax_keep, probs.argmax(axis=1) == labels)


def test_rerun_replaces_an_older_output(small_inputs, tmp_path):
    combined, labels_npy, _, _ = small_inputs
    out = tmp_path / "masks"
    args = ["--labels", str(labels_npy), "--pred-probs", str(combined), "--out", str(out)]
    assert main([*args, "--methods", "argmax"]) == 0
    assert main([*args, "--methods", "cl_pbnr"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clpipe-manifest.json", "summary.json", "train_pruned_cl_pbnr"]


def test_fsspec_urls_in_and_out(small_inputs):
    combined, labels_npy, _, _ = small_inputs
    fs = fsspec.filesystem("memory")
    storage.copy_output(str(combined), "memory://mm-in/combined")
    fs.pipe("/mm-in/labels.npy", labels_npy.read_bytes())
    try:
        assert main(["--labels", "memory://mm-in/labels.npy", "--pred-probs", "memory://mm-in/combined",
                     "--out", "memory://mm-out", "--compat", "cleanlab-2021"]) == 0
        assert fs.exists("/mm-out/summary.json")
        assert fs.exists("/mm-out/train_pruned_cl_both/train_mask.npy")
    finally:
        fs.rm("/mm-in", recursive=True)
        if fs.exists("/mm-out"):
            fs.rm("/mm-out", recursive=True)


def _write(path: Path, array: np.ndarray) -> str:
    np.save(path, array)
    return str(path)


def _bad_cases(tmp: Path, labels: np.ndarray, probs: np.ndarray) -> dict[str, tuple[list[str], str]]:
    """case -> (CLI arguments without --out, text the ERROR line must contain)."""
    good_labels = _write(tmp / "good_labels.npy", labels)
    good_probs = _write(tmp / "good_probs.npy", probs)
    nan, negative = probs.copy(), probs.copy()
    nan[3, 0] = np.nan
    negative[3] = [1.1, -0.1, 0.0]
    return {
        "length mismatch": (["--labels", _write(tmp / "short.npy", labels[:-1]), "--pred-probs", good_probs],
                            "has 199 rows"),
        "pred_probs 3-D": (["--labels", good_labels, "--pred-probs", _write(tmp / "p3.npy", probs[None])],
                           "2-D (N, K)"),
        "NaN": (["--labels", good_labels, "--pred-probs", _write(tmp / "nan.npy", nan)], "NaN"),
        "negative": (["--labels", good_labels, "--pred-probs", _write(tmp / "neg.npy", negative)],
                     "negative"),
        "not normalized": (["--labels", good_labels, "--pred-probs", _write(tmp / "x2.npy", probs * 2)],
                           "do not sum to 1"),
        "label out of range": (["--labels", _write(tmp / "big.npy", np.where(labels == 2, 3, labels)),
                                "--pred-probs", good_probs], "outside [0, 3)"),
        "class without examples": (["--labels", _write(tmp / "two.npy", np.where(labels == 2, 0, labels)),
                                    "--pred-probs", good_probs], "have no examples"),
        "unknown method": (["--labels", good_labels, "--pred-probs", good_probs, "--methods", "argmax,cl_x"],
                           "unknown method"),
        "missing file": (["--labels", good_labels, "--pred-probs", str(tmp / "nope.npy")], "file not found"),
        "directory without pred_probs.npy": (["--labels", good_labels, "--pred-probs", str(tmp)],
                                             "not a clpipe output: no clpipe-manifest.json"),
        "labels of another format": (["--labels", str(tmp / "labels.csv"), "--pred-probs", good_probs],
                                     ".json, .json.gz or .npy"),
    }


CASES = ["length mismatch", "pred_probs 3-D", "NaN", "negative", "not normalized", "label out of range",
         "class without examples", "unknown method", "missing file", "directory without pred_probs.npy",
         "labels of another format"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_without_output(case, small_inputs, tmp_path, capsys):
    _, _, labels, probs = small_inputs
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args, message = _bad_cases(inputs, labels, probs)[case]
    out = tmp_path / "masks"
    assert main([*args, "--out", str(out)]) == 2
    assert not out.exists()
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("ERROR make-masks: ") and message in error
