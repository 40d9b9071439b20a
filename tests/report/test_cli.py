"""clpipe report through its CLI: condition.json from stage directories, the rendered report
(Markdown, HTML, CSV, PNG figures), bad input -> exit 2 and nothing written."""

import json
import os

from clpipe.components.common import storage

from clpipe import cli as clpipe_cli

from .conftest import labels_summary, masks_summary, probs_summary, run_metrics


def _write(directory, name, data, stage):
    """A stage output holding one JSON file, published with its manifest as ``stage`` would."""
    with storage.staged_output(str(directory), stage=stage) as tmp:
        storage.save_json(os.path.join(tmp, name), data)
    return str(directory)


def _condition_dirs(root, name, noise, methods=("none", "argmax", "cl_pbnr")):
    labels = labels_summary(name, noise, 0.0, noise)
    return {
        "labels": _write(root / name / "labels", "summary.json", labels, "noisy-labels make"),
        "probs": _write(root / name / "probs", "summary.json", probs_summary(), "combine-folds"),
        "masks": _write(root / name / "masks", "summary.json", masks_summary(), "make-masks"),
        "runs": [_write(root / name / f"run-{m}", "metrics.json", run_metrics(m), "coteach") for m in methods],
    }


def _report_condition(d, out) -> int:
    """``clpipe report condition`` over the stage directories ``d``; returns the exit code."""
    argv = ["report", "condition", "--labels", d["labels"], "--pred-probs", d["probs"], "--masks", d["masks"]]
    return clpipe_cli.main([*argv, "--out", str(out), *d["runs"]])


def _condition(root, name, noise):
    out = root / name / "result"
    assert _report_condition(_condition_dirs(root, name, noise), out) == 0
    return str(out)


def test_condition_then_render(tmp_path, capsys):
    results = [_condition(tmp_path, "n40", 0.4), _condition(tmp_path, "n20", 0.2)]
    record = json.loads((tmp_path / "n40" / "result" / "condition.json").read_text())
    assert list(record["runs"]) == ["argmax", "cl_pbnr", "none"]
    out = tmp_path / "report"
    assert clpipe_cli.main(["report", "render", "--print", "--out", str(out), *results]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "clpipe-manifest.json",
        "plots",
        "report.html",
        "report.md",
        "results.csv",
        "results.json",
    ]
    pngs = sorted(p.name for p in (out / "plots").iterdir())
    assert pngs == ["accuracy_curves.png", "noise_matrices.png", "removed_counts.png"]
    assert all((out / "plots" / p).read_bytes().startswith(b"\x89PNG") for p in pngs)
    printed = capsys.readouterr().out
    assert "| method | n20<br>20 %, S 0 | n40<br>40 %, S 0 |" in printed
    assert "| CL: PBNR | 0.500 (0.892) | 0.500 (0.863) |" in printed
    assert len((out / "results.csv").read_text().splitlines()) == 1 + 6
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_a_run_without_a_mask_exits_2_and_writes_nothing(tmp_path, capsys):
    d = _condition_dirs(tmp_path, "c", 0.2, methods=("cl_both",))
    out = tmp_path / "result"
    assert _report_condition(d, out) == 2
    assert "has no mask" in capsys.readouterr().err
    assert not out.exists()


def test_render_of_a_missing_condition_exits_2(tmp_path, capsys):
    out = tmp_path / "report"
    assert clpipe_cli.main(["report", "render", "--out", str(out), str(tmp_path / "nowhere")]) == 2
    assert "nowhere: output not found" in capsys.readouterr().err
    assert not out.exists()
