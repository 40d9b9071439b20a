"""Every bad input of issue 9, through the ``clpipe`` command: exit 2, exactly one
``ERROR <stage>: <file or URL>: <field>: <problem>`` line, no traceback, and the output location
unchanged (absent stays absent; an existing file or folder keeps its bytes) -- the error
contract of components/common/cli.py, one table for every command.

Each case is (id, argv, stage, texts the ERROR line must contain, texts it must not contain,
what the output location holds before). ``{name}`` in argv and texts is a path of the session's
inputs (conftest.py ``world``); ``{out}`` is the case's own output location. The cases run
in-process through ``clpipe.cli.main`` (the same function ``python -m clpipe.cli`` calls; torch is
imported once instead of once per case); :func:`test_in_process_is_the_real_command` runs a few
of them as real processes and checks the same exit code and line. Measured 2026-11-29 on the 2-core
shared VM: the 91 cases without a special environment or a pre-filled output took 353 s as
``python -m clpipe.cli`` processes (about 4 s each, mostly importing torch); the whole suite takes
about 40 s in-process (``pytest tests/bad_inputs``, 10 s of it making the inputs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from clpipe.cli import main as clpipe_main
from tests.stderr import LOG_LINE

#: The placeholder of the output location in argv.
OUT = "{out}"
#: A line of clpipe's log (components/common/cli.py ``configure_logging``).


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        id: What is wrong, in a few words.
        argv: The command line after ``clpipe`` (placeholders: see the module docstring).
        stage: The ``<stage>`` of the ERROR line.
        must: Texts the ERROR line contains: the file or URL, the field (or flag), the problem.
        must_not: Texts it must not contain (advice that does not apply, a doubled path).
        before: The output location before the run: ``absent``, ``file`` (a regular file) or
            ``folder`` (a folder of the user's, not a clpipe output).
        env: The environment the case needs (``no_aws``: no credentials; ``s3_down``: credentials,
            endpoint on a closed port; ``minio_default``: credentials, no endpoint).
        out: Where the output location is, when it is not ``{out}`` (e.g. a path that cannot exist).
    """

    id: str
    argv: tuple[str, ...]
    stage: str
    must: tuple[str, ...]
    must_not: tuple[str, ...] = ()
    before: str = "absent"
    env: str = ""
    out: str = OUT


def case(id: str, argv: str | list[str], stage: str, *must: str, must_not: tuple[str, ...] = (),
         before: str = "absent", env: str = "", out: str = OUT) -> Case:
    """A :class:`Case`; ``argv`` given as one string is split on whitespace."""
    args = tuple(argv.split() if isinstance(argv, str) else argv)
    return Case(id, args, stage, tuple(must), must_not, before, env, out)


NL = "noisy-labels --dataset {ds} --name c --out {out}"
FT = ("fold-train --dataset {ds} --labels {labels_npy} --fold 0 --n-folds 2 --arch airbench-tiny --epochs 1 "
      "--batch-size 4 --device cpu --no-progress --out {out}")
CF = "combine-folds --dataset {ds} --labels {noisy} --out {out}"
MM = "make-masks --labels {labels_npy} --out {out}"
CT = ("coteach {ds} --train-labels {noisy} --train-mask {masks} --method argmax --recipe fast --cnn-width 8 "
      "--batch-size 4 --epochs 2 --device cpu --no-progress --out {out}")
RC = "report condition --labels {noisy} --pred-probs {combined} --masks {masks} --out {out}"

CASES = [
    # --- given labels (every format) -----------------------------------------------------------
    case("labels: a value of 2**70", f"{NL} --labels {{huge}}", "noisy-labels", "{huge}", "/data/train/a/0_a.png",
         "1180591620717411303424"),
    case("labels: truncated .json.gz", f"{NL} --labels {{truncated_gz}}", "noisy-labels", "{truncated_gz}"),
    case("labels: a string value", f"{NL} --labels {{string}}", "noisy-labels", "{string}", "'cat'"),
    case("labels: not JSON", f"{MM} --pred-probs {{combined}} --labels {{broken_json}}", "make-masks",
         "{broken_json}", "not valid JSON"),
    case("labels: a JSON list", f"{NL} --labels {{list_json}}", "noisy-labels", "{list_json}", "JSON object"),
    case("labels: a negative value", f"{FT} --labels {{negative_json}}", "fold-train", "{negative_json}", "labels",
         "outside [0, 3)"),
    case("labels: float .npy", f"{MM} --pred-probs {{combined}} --labels {{float_labels}}", "make-masks",
         "{float_labels}", "labels", "float32"),
    case("labels: one row short", f"{MM} --pred-probs {{probs}} --labels {{short_labels}}", "make-masks",
         "{short_labels}", "labels", "11 rows"),
    case("labels: a .csv", f"{NL} --labels {{labels_csv}}", "noisy-labels", "{labels_csv}", ".json, .json.gz or .npy"),
    case("labels: not an .npy", f"{FT} --labels {{garbage_npy}}", "fold-train", "{garbage_npy}", "labels",
         "not a readable .npy", must_not=("allow_pickle",)),
    case("labels: missing file", f"{FT} --labels {{ds}}/nope.json", "fold-train", "{ds}/nope.json", "not found"),
    case("labels: keys of another dataset", f"{NL} --labels {{other_keys}}", "noisy-labels", "{other_keys}", "keys",
         "x/1.png"),
    case("labels: foo:// URL", f"{NL} --labels foo://bucket/labels.npy", "noisy-labels", "foo://bucket/labels.npy",
         "unknown URL scheme 'foo'"),
    # --- datasets --------------------------------------------------------------------------------
    case(".npz: not a zip", f"noisy-labels --dataset {{notzip}} --name c --noise 0.2 --out {OUT}", "noisy-labels",
         "{notzip}", "not a readable .npz", must_not=("allow_pickle",)),
    case(".npz: classes as an object array", "data info {objclasses}", "data info", "{objclasses}", "classes",
         "object array"),
    case(".npz: labels with a gap", f"noisy-labels --dataset {{gap}} --name c --noise 0.2 --out {OUT}",
         "noisy-labels", "{gap}", "labels", "[10, 11]"),
    case(".npz: no images", f"{FT} --dataset {{noimages}}", "fold-train", "{noimages}", "images", "missing"),
    case(".npz: 16 x 16 images", f"data export-imagefolder --dataset {{wrongshape}} --out {OUT}",
         "data export-imagefolder", "{wrongshape}", "images", "(12, 16, 16, 3)"),
    case(".npz: one class", f"noisy-labels --dataset {{oneclass}} --name c --noise 0.2 --out {OUT}", "noisy-labels",
         "{oneclass}", "classes", "1 classes"),
    case("dataset: missing", f"noisy-labels --dataset {{ds}}/nowhere --name c --noise 0.2 --out {OUT}",
         "noisy-labels", "{ds}/nowhere", "not found"),
    case("dataset: a README.md", f"{CT} --test-dataset {{readme}}", "coteach", "{readme}", "not found"),
    case("dataset: one .npz, no test split (coteach)", CT.replace("{ds}", "{ds}/train.npz", 1), "coteach",
         "{ds}/train.npz", "test", "no test split beside it"),
    case("ImageFolder: truncated PNG", f"data prepare --dataset {{folder_truncated}} --out {OUT}", "data prepare",
         "{truncated_png}"),
    case("ImageFolder: truncated PNG (trainer)", f"{FT} --dataset {{folder_truncated}} --labels {{folder_labels}}",
         "fold-train", "{truncated_png}"),
    case("ImageFolder: an image of another size", f"data prepare --dataset {{folder_sizes}} --out {OUT}",
         "data prepare", "{odd_png}", "8x9 px", must_not=("train//",)),
    # --- fold-train parameters ---------------------------------------------------------------------
    case("fold-train --lr nan", f"{FT} --lr nan", "fold-train", "--lr", "nan"),
    case("fold-train --lr inf", f"{FT} --lr inf", "fold-train", "--lr", "inf"),
    case("fold-train --lr -1", f"{FT} --lr -1", "fold-train", "--lr", "-1"),
    case("fold-train --device bogus", f"{FT} --device bogus", "fold-train", "--device", "bogus"),
    case("fold-train --fold 2 of 2", f"{FT} --fold 2", "fold-train", "--fold", "[0, 2)"),
    case("fold-train --n-folds 1", f"{FT} --n-folds 1 --fold 0", "fold-train", "--n-folds", ">= 2"),
    case("fold-train --batch-size 0", f"{FT} --batch-size 0", "fold-train", "--batch-size", "0"),
    case("fold-train --checkpoint-every -1", f"{FT} --checkpoint-every -1", "fold-train", "--checkpoint-every"),
    case("fold-train --subset-per-class -1", f"{FT} --subset-per-class -1", "fold-train", "--subset-per-class"),
    case("fold-train: a checkpoint that is not clpipe's", FT.replace("{out}", "{evil_fold}"), "fold-train",
         "{evil_fold}/checkpoint.pt", "not a clpipe", must_not=("weights_only", "pickle"), out="{evil_fold}"),
    case("fold-train --out an existing file", FT, "fold-train", "{out}", "existing file", before="file"),
    # --- combine-folds -----------------------------------------------------------------------------
    case("combine-folds: a missing fold", f"combine-folds --out {OUT} {{ds}}/fold0 {{ds}}/fold1", "combine-folds",
         "{ds}/fold0", "not found"),
    case("combine-folds: another stage's output as a fold", f"combine-folds --out {OUT} {{noisy}} {{masks}}",
         "combine-folds", "{noisy}", "noisy-labels"),
    case("pred_probs: 4 classes, dataset 3", f"{CF} --given-pred-probs {{probs_4class}}", "combine-folds",
         "{probs_4class}", "pred_probs", "expected shape (12, 3)", "got (12, 4)"),
    case("pred_probs: NaN (given)", f"{CF} --given-pred-probs {{probs_nan}}", "combine-folds", "{probs_nan}",
         "pred_probs", "NaN"),
    case("pred_probs: logits (given)", f"{CF} --given-pred-probs {{probs_logits}}", "combine-folds",
         "{probs_logits}", "pred_probs", "negative values"),
    case("combine-folds: --given-pred-probs without --dataset",
         f"combine-folds --labels {{noisy}} --given-pred-probs {{probs}} --out {OUT}", "combine-folds",
         "--dataset"),
    case("combine-folds --out s3:// without credentials", f"{CF} --given-pred-probs {{probs}}".replace(
         "{out}", "s3://bucket/probs"), "combine-folds", "s3://bucket/probs", "no S3 credentials", env="no_aws",
         out="none"),
    # --- make-masks --------------------------------------------------------------------------------
    case("pred_probs: 4 classes, labels 3 (make-masks)", f"{MM} --pred-probs {{probs_4class}}", "make-masks",
         "{labels_npy}: labels", "classes [3] have no examples", "K = 4 is the class count of {probs_4class}",
         "must count the same classes"),
    case("pred_probs: 2 classes, labels 3 (make-masks)", f"{MM} --pred-probs {{probs_2class}}", "make-masks",
         "{labels_npy}: labels", "outside [0, 2)", "K = 2 is the class count of {probs_2class}",
         "must count the same classes"),
    case("make-masks: unknown method", f"{MM} --pred-probs {{combined}} --methods argmax cl_x", "make-masks",
         "--methods", "cl_x"),
    case("make-masks: --issue-method not among the methods",
         f"{MM} --pred-probs {{combined}} --methods argmax --dataset {{ds}} --issue-method cl_both", "make-masks",
         "--issue-method", "cl_both"),
    case("make-masks: --dataset of another size", f"{MM} --pred-probs {{combined}} --dataset {{folder}}",
         "make-masks", "{folder}"),
    case("make-masks --out a folder of the user's", f"{MM} --pred-probs {{combined}}", "make-masks", "{out}",
         "important.txt", before="folder"),
    # --- coteach -----------------------------------------------------------------------------------
    case("coteach --exponent nan", f"{CT} --exponent nan", "coteach", "--exponent", "nan"),
    case("coteach --exponent -1", f"{CT} --exponent -1", "coteach", "--exponent", "-1"),
    case("coteach --stop-after -1", f"{CT} --stop-after -1", "coteach", "--stop-after", ">= 1"),
    case("coteach --stop-after 0", f"{CT} --stop-after 0", "coteach", "--stop-after", ">= 1"),
    case("coteach --forget-rate 1.5", f"{CT} --forget-rate 1.5", "coteach", "--forget-rate", "1.5"),
    case("coteach --lr nan", f"{CT} --lr nan", "coteach", "--lr", "nan"),
    case("coteach --device bogus", f"{CT} --device bogus", "coteach", "--device", "bogus"),
    case("coteach --recipe bogus", f"{CT} --recipe bogus", "coteach", "--recipe", "bogus"),
    case("coteach --method bogus", f"{CT} --method bogus", "coteach", "--method", "bogus"),
    case("coteach: a method the masks do not have", f"{CT} --method cl_pbnr", "coteach", "{masks}", "cl_pbnr"),
    case("coteach: a mask of 5 rows", f"{CT} --train-mask {{mask5}}", "coteach", "{mask5}", "train_mask", "5"),
    case("coteach: labels of another dataset", f"{CT} --train-labels {{labels_24}}", "coteach",
         "{labels_24}", "24 rows"),
    case("coteach: a checkpoint that is not clpipe's", CT.replace("{out}", "{evil_run}"), "coteach",
         "{evil_run}/checkpoint.pt", "not a clpipe checkpoint", must_not=("weights_only", "pickle"),
         out="{evil_run}"),
    case("coteach: a checkpoint that is no torch.save file", CT.replace("{out}", "{garbage_run}"), "coteach",
         "{garbage_run}/checkpoint.pt", "not a clpipe checkpoint", must_not=("weights_only",), out="{garbage_run}"),
    case("coteach --out foo://", CT.replace("{out}", "foo://bucket/run"), "coteach", "foo://bucket/run",
         "unknown URL scheme", out="none"),
    # --- noisy-labels ------------------------------------------------------------------------------
    case("noisy-labels --noise 1.5", f"{NL} --noise 1.5", "noisy-labels", "noise", "1.5"),
    case("noisy-labels --sparsity 2", f"{NL} --noise 0.2 --sparsity 2", "noisy-labels", "sparsity", "2"),
    case("noisy-labels --name with a slash", f"noisy-labels --dataset {{ds}} --name a/b --noise 0.2 --out {OUT}",
         "noisy-labels", "name", "a/b"),
    case("noisy-labels --condition not JSON", f"noisy-labels --dataset {{ds}} --condition {{{{x --out {OUT}",
         "noisy-labels", "--condition"),
    case("noisy-labels: declared noise 0.6, clean labels", f"{NL} --noise 0.6 --labels {{labels_npy}}",
         "noisy-labels", "{labels_npy}", "noise", "declares noise 0.6", "0.000 of the rows"),
    case("noisy-labels: no noise and no labels", NL, "noisy-labels", "noise"),
    case("noisy-labels --out an existing file", f"{NL} --noise 0.2", "noisy-labels", "{out}", "existing file",
         before="file"),
    # --- report ------------------------------------------------------------------------------------
    case("report condition: labels of another condition", RC.replace("{noisy}", "{noisy2}"),
         "report condition", "{noisy2}: manifest", "not the noisy-labels output {combined} was made from"),
    case("report condition: an early-stopped run", f"{RC} {{run_stopped}}", "report condition", "{run_stopped}",
         "1 of 3"),
    case("report condition: missing masks", RC.replace("{masks}", "{ds}/masks"), "report condition", "{ds}/masks",
         "not found"),
    case("report render: a labels output as a condition", f"report render --out {OUT} {{noisy}}", "report render",
         "{noisy}"),
    # --- predict -----------------------------------------------------------------------------------
    case("predict: a folder that is not a model", f"predict --model {{noisy}} --out {OUT} {{folder}}", "predict",
         "{noisy}"),
    case("predict: a missing model", f"predict --model {{ds}}/model --out {OUT} {{folder}}", "predict",
         "{ds}/model", "not found"),
    case("predict --out an existing file", f"predict --model {{noisy}} --top-k 1 --out {OUT} {{folder}}", "predict",
         "{out}", "already there", before="file"),
    # --- data --------------------------------------------------------------------------------------
    case("data info: MISSING", "data info {ds}/MISSING", "data info", "{ds}/MISSING", "not found"),
    case("data info: a README.md", "data info {readme}", "data info", "{readme}"),
    case("data fetch --out s3://", "data fetch --out s3://bucket/data cifar10", "data fetch", "--out",
         "s3://bucket/data", "local folder", out="none"),
    case("data fetch: foo:// mirror", f"data fetch --out {OUT} cifar10 --cifar10-url foo://mirror/c.tar.gz",
         "data fetch", "foo://mirror/c.tar.gz", "download failed"),
    case("data prepare --resolution 0", f"data prepare --dataset {{ds}} --resolution 0 --out {OUT}", "data prepare",
         "--resolution", "0"),
    case("data prepare: --out an existing file", f"data prepare --dataset {{ds}} --out {OUT}", "data prepare",
         "{out}", "existing file", before="file"),
    case("data pack: a folder without .npz", f"data pack --dataset {{folder}} --out {OUT}", "data pack", "{folder}",
         ".npz"),
    case("data unpack: a manifest that is not JSON", f"data unpack --manifest {{broken_json}} --chunks {{ds}} "
         f"--out {OUT}", "data unpack", "{broken_json}"),
    case("data subset --per-class -1", f"data subset --dataset {{ds}} --per-class -1 --out {OUT}", "data subset",
         "--per-class", "-1"),
    case("data subset: labels of 2**70", f"data subset --dataset {{ds}} --per-class 2 --out {OUT} --labels {{huge}} "
         "--labels-out {ds}/l.json", "data subset", "{huge}"),
    case("data export-imagefolder: .npz label gap", f"data export-imagefolder --dataset {{gap}} --out {OUT}",
         "data export-imagefolder", "{gap}", "labels"),
    case("data subset --out an existing file", f"data subset --dataset {{ds}} --per-class 2 --out {OUT}",
         "data subset", "{out}", "already there", before="file"),
    case("data export-imagefolder into a folder of other files", f"data export-imagefolder --dataset {{ds}} "
         f"--out {OUT}", "data export-imagefolder", "{out}", "important.txt", before="folder"),
    # --- the pipeline commands ---------------------------------------------------------------------
    case("run: noise 1.5", f"run {{config_noise15}} --output {OUT}", "run", "{config_noise15}", "condition 'g': noise"),
    case("run: n_folds 1", f"run {{config_folds1}} --output {OUT}", "run", "{config_folds1}: n_folds", ">= 2"),
    case("run: YAML syntax error", f"run {{config_syntax}} --output {OUT}", "run", "{config_syntax}", "not valid YAML: line 4, column 8"),
    case("run: an unknown key", f"run {{config_unknown_key}} --output {OUT}", "run", "{config_unknown_key}",
         "n_fold"),
    case("run: coteach on, a dataset without a test split", f"run {{config_coteach_on}} --output {OUT}", "run",
         "{config_coteach_on}: coteach: 'on', but the dataset {folder} has no test split"),
    case("run: a missing config", f"run {{ds}}/none.yaml --output {OUT}", "run", "{ds}/none.yaml", "not found"),
    case("run --condition noise=2", f"run --dataset {{ds}} --condition name=g,noise=2 --output {OUT}", "run",
         "condition 'g': noise", "[0, 1)"),
    case("compile -o /nonexistent/dir/p.yaml", "compile -o /nonexistent/dir/p.yaml", "compile",
         "/nonexistent/dir/p.yaml", out="/nonexistent/dir/p.yaml"),
    case("compile --gpus -1", f"compile -o {OUT} --gpus -1", "compile", "--gpus", "-1"),
    case("submit --host http://localhost:1", "submit --host http://localhost:1 {config_good}", "submit",
         "http://localhost:1", "unreachable", out="none"),
    case("submit: coteach on, a dataset without a test split", "submit --host http://localhost:1 "
         "{config_coteach_on}", "submit", "{config_coteach_on}: coteach:", "no test split", out="none"),
    case("submit: a config with noise 1.5", "submit --host http://localhost:1 {config_noise15}", "submit",
         "{config_noise15}: condition 'g': noise", out="none"),
    # --- the command line itself: argparse's errors in the same one-line form ------------------------
    case("data fetch imagenet (not a choice)", "data fetch imagenet", "data fetch", "command line", "'imagenet'",
         out="none"),
    case("fold-train --lr x (not a number)", f"{FT} --lr x", "fold-train", "command line", "--lr", "'x'"),
    case("make-masks without --pred-probs", f"{MM}", "make-masks", "command line", "--pred-probs"),
    case("report: no subcommand", "report", "report", "command line", out="none"),
    case("compile --bogus (unknown flag)", f"compile -o {OUT} --bogus", "compile", "command line", "--bogus"),
    # --- object stores (make-masks' are in tests/storage/test_bad_locations.py) ---------------------
    case("noisy-labels --out s3:// endpoint down", f"{NL} --noise 0.2".replace("{out}", "s3://bucket/labels"),
         "noisy-labels", "s3://bucket/labels", "cannot reach the S3 endpoint", env="s3_down", out="none"),
    case("fold-train --labels minio:// without an endpoint",
         FT.replace("{labels_npy}", "minio://mlpipeline/labels.npy"), "fold-train", "minio://mlpipeline/labels.npy",
         "AWS_ENDPOINT_URL", env="minio_default"),
    case("report render --out foo://", "report render --out foo://x/report {noisy}",
         "report render", "foo://x/report", out="none"),
]


def test_the_suite_is_as_large_as_promised():
    """Issue 9: at least 60 distinct bad inputs."""
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids) >= 60
    assert len({c.argv for c in CASES}) == len(CASES)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(kind: str, monkeypatch, tmp_path: Path) -> None:
    """No AWS credentials anywhere botocore looks; then what ``kind`` adds."""
    import s3fs

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "MINIO_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if kind in ("no_aws", "s3_down"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    if kind in ("s3_down", "minio_default"):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    s3fs.S3FileSystem.clear_instance_cache()


def _snapshot(path: Path) -> dict[str, str] | None:
    """Relative path -> sha256 of every file under ``path`` (``dir`` for a folder; ``""`` is ``path``
    itself when it is a file); None when nothing is there."""
    if not path.exists():
        return None
    if path.is_file():
        return {"": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*"))}


def _prefill(out: Path, before: str) -> None:
    if before == "file":
        out.write_bytes(b"a file of the user's")
    elif before == "folder":
        (out / "sub").mkdir(parents=True)
        (out / "important.txt").write_text("keep")
        (out / "sub" / "data.csv").write_text("1,2")


def _fill(text: str, paths: dict) -> str:
    return text.format(**paths)


def run_case(c: Case, world: dict, tmp_path: Path, capsys) -> tuple[int, str]:
    """Runs ``c`` in-process; returns (exit code, stderr). A raised exception is a bug (exit 1)."""
    out = tmp_path / "out"
    paths = {**world, "out": str(out)}
    argv = [_fill(a, paths) for a in c.argv]
    for handler in logging.root.handlers[:]:  # log to this case's captured stderr
        logging.root.removeHandler(handler)
    capsys.readouterr()
    try:
        code = clpipe_main(argv)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - a traceback is what the contract forbids
        pytest.fail(f"{c.id}: {type(e).__name__} raised (a traceback, not one ERROR line): {e}")
    return code, capsys.readouterr().err


def _location(c: Case, world: dict, tmp_path: Path) -> Path | None:
    return None if c.out == "none" else Path(_fill(c.out, {**world, "out": str(tmp_path / "out")}))


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, world, tmp_path, capsys, monkeypatch):
    if c.env:
        _environment(c.env, monkeypatch, tmp_path)
    paths = {**world, "out": str(tmp_path / "out")}
    location = _location(c, world, tmp_path)
    if c.before != "absent":
        _prefill(location, c.before)
    outside = {"world": _snapshot(Path(world["root"])), "tmp": _snapshot(tmp_path),
               "location": location and _snapshot(location)}
    code, err = run_case(c, world, tmp_path, capsys)
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert code == 2 and len(errors) == 1, f"exit {code}, stderr:\n{err}"
    line = errors[0]
    others = [x for x in err.splitlines() if x != line and not LOG_LINE.match(x)]
    assert not others, f"stderr holds more than log lines and the ERROR line:\n{err}"
    assert line.startswith(f"ERROR {c.stage}: "), line
    assert "Traceback" not in err, err
    for text in c.must:
        assert _fill(text, paths) in line, f"{text!r} not in {line!r}"
    for text in c.must_not:
        assert _fill(text, paths) not in line, f"{text!r} in {line!r}"
    after = {"world": _snapshot(Path(world["root"])), "tmp": _snapshot(tmp_path),
             "location": location and _snapshot(location)}
    assert after == outside, "the output location, the inputs or their folder changed"


#: Cases run again as real ``python -m clpipe.cli`` processes: a stage (generated command line), a
#: hand-made one with subcommands (data), a pipeline command (compile).
REAL_PROCESS_CHECKS = ["labels: a value of 2**70", "data info: MISSING", "compile -o /nonexistent/dir/p.yaml"]


@pytest.mark.parametrize("id_", REAL_PROCESS_CHECKS)
def test_in_process_is_the_real_command(id_, world, tmp_path, capsys):
    c = next(c for c in CASES if c.id == id_)
    (tmp_path / "a").mkdir()
    code, err = run_case(c, world, tmp_path / "a", capsys)
    paths = {**world, "out": str(tmp_path / "b" / "out")}
    (tmp_path / "b").mkdir()
    proc = subprocess.run([sys.executable, "-m", "clpipe.cli", *[_fill(a, paths) for a in c.argv]], check=False,
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    line = [x for x in err.splitlines() if x.startswith("ERROR")]
    real = [x for x in proc.stderr.splitlines() if x.startswith("ERROR")]
    assert (proc.returncode, [x.replace("/b/", "/a/") for x in real]) == (code, line)
