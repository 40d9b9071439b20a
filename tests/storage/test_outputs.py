"""Stage outputs (components/common/storage.py): manifests, refusals of locations a stage must not
write, exact replacement of an earlier output, readers that verify, staging folders. On a local
disk and on ``memory://`` (the object-store code path: no rename, one PUT per file); the same
against real servers and with faults injected is in test_faults_*.py."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
from clpipe.components.common import storage
from clpipe.components.common.errors import InputError


@pytest.fixture(params=["local", "memory"])
def base(request, tmp_path):
    """A fresh folder: local, or a prefix of fsspec's in-memory object store."""
    if request.param == "local":
        return str(tmp_path / "w")
    return f"memory://clpipe-test-{uuid.uuid4().hex[:8]}"


def publish(url, files, stage="s", inputs=()):
    """Publishes ``files`` (relative path -> bytes) as an output of ``stage``."""
    with storage.staged_output(url, stage=stage, inputs=inputs) as tmp:
        for name, data in files.items():
            storage.write_bytes(os.path.join(tmp, *name.split("/")), data)


def tree(url):
    """Every file below ``url`` (relative path -> bytes), staging folders included."""
    fs, path = storage.url_to_fs(url)
    fs.invalidate_cache()
    if not fs.exists(path):
        return {}
    root = path.rstrip("/").replace(os.sep, "/")
    return {p.replace(os.sep, "/")[len(root) + 1 :]: fs.cat_file(p) for p in fs.find(path, withdirs=False)}


def without_manifest(files):
    return {k: v for k, v in files.items() if k != storage.MANIFEST}


def test_the_manifest_lists_every_file_stage_version_and_inputs(base, tmp_path):
    label_file = tmp_path / "given.json"
    label_file.write_text("{}")
    upstream = storage.join(base, "up")
    publish(upstream, {"labels.npy": b"L"}, stage="noisy-labels")
    out = storage.join(base, "out")
    inputs = [str(label_file), upstream, storage.join(upstream, "labels.npy")]
    publish(out, {"summary.json": b"{}", "train_pruned_argmax/train_mask.npy": b"MASK"}, "make-masks", inputs)

    manifest = json.loads(storage.read_bytes(storage.join(out, storage.MANIFEST)))
    assert manifest["format"] == storage.MANIFEST_FORMAT and manifest["stage"] == "make-masks"
    assert manifest["clpipe_version"] == "0.1.0" and manifest["published"].endswith("+00:00")
    assert manifest["files"] == {
        "summary.json": {"size": 2, "sha256": hashlib.sha256(b"{}").hexdigest()},
        "train_pruned_argmax/train_mask.npy": {"size": 4, "sha256": hashlib.sha256(b"MASK").hexdigest()},
    }
    plain, whole, inside = manifest["inputs"]
    assert plain == {"url": str(label_file), "type": "file", "size": 2, "version": plain["version"]}
    up = storage.open_output(upstream)
    assert whole == {"url": upstream, "stage": "noisy-labels", "manifest_sha256": up.digest}
    assert inside["output"] == upstream and inside["manifest_sha256"] == up.digest
    assert inside["sha256"] == up.files["labels.npy"].sha256


def test_readers_get_only_listed_and_verified_files(base):
    out = storage.join(base, "out")
    publish(out, {"a.npy": storage.npy_bytes(np.arange(3)), "sub/b.json": b'{"x": 1}'})
    output = storage.open_output(out, stage="s")
    assert sorted(output.files) == ["a.npy", "sub/b.json"]
    np.testing.assert_array_equal(output.load_npy("a.npy"), [0, 1, 2])
    # a single file inside an output, given as an input, is verified against the manifest above it
    assert storage.load_json(storage.join(out, "sub", "b.json")) == {"x": 1}

    storage.write_bytes(storage.join(out, "stale.npy"), storage.npy_bytes(np.ones(2)))
    with pytest.raises(
        InputError, match=r"stale.npy: not listed in the manifest of .*it lists a.npy, sub/b.json"
    ):
        storage.load_npy(storage.join(out, "stale.npy"))
    storage.write_bytes(storage.join(out, "sub", "b.json"), b'{"x": 2}')  # same size, other content
    with pytest.raises(
        InputError, match=r"b.json: does not match the manifest .* or the output is being rewritten"
    ):
        storage.load_json(storage.join(out, "sub", "b.json"))
    with pytest.raises(InputError, match="is an output of s, expected an output of make-masks or coteach"):
        storage.open_output(out, stage=("make-masks", "coteach"))


def test_an_output_without_a_manifest_or_with_a_file_missing_is_refused(base):
    plain = storage.join(base, "plain")
    storage.write_bytes(storage.join(plain, "pred_probs.npy"), b"x")
    with pytest.raises(InputError, match=r"plain: not a clpipe output: no clpipe-manifest.json"):
        storage.open_output(plain)
    with pytest.raises(InputError, match=r"nowhere: output not found"):
        storage.open_output(storage.join(base, "nowhere"))

    out = storage.join(base, "out")
    publish(out, {"a.bin": b"a", "b.bin": b"b"})
    fs, path = storage.url_to_fs(storage.join(out, "b.bin"))
    fs.rm_file(path)
    with pytest.raises(
        InputError, match=r"out: incomplete s output: 1 listed files missing .*\(b.bin\); rerun s"
    ):
        storage.open_output(out)


def test_files_outside_any_output_are_read_as_they_are(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    np.save(tmp_path / "d" / "e" / "labels.npy", np.arange(4))
    np.testing.assert_array_equal(storage.load_npy(str(tmp_path / "d" / "e" / "labels.npy")), np.arange(4))


def test_a_foreign_folder_is_refused_and_left_as_it_was(base):
    """The issue's case: --out on a folder holding important.txt and a sub-folder."""
    out = storage.join(base, "mine")
    storage.write_bytes(storage.join(out, "important.txt"), b"keep me")
    storage.write_bytes(storage.join(out, "sub", "notes.md"), b"and me")
    before = tree(out)
    with pytest.raises(
        InputError,
        match=r"mine: exists and is not an output of s \(no clpipe-manifest.json; "
        r"it holds important.txt, sub/notes.md\); a stage never deletes what it did not write",
    ):
        publish(out, {"a.bin": b"a"})
    assert tree(out) == before


def test_another_stages_output_is_refused(base):
    out = storage.join(base, "out")
    publish(out, {"a.bin": b"a"}, stage="combine-folds")
    with pytest.raises(InputError, match="holds an output of combine-folds, not of make-masks"):
        storage.check_output(out, stage="make-masks")


@pytest.mark.parametrize(
    ("out_name", "input_name", "problem"),
    [
        ("cv", "cv", "is also an input"),
        ("cv/masks", "cv", "lies inside the input"),
        ("cv", "cv/pred_probs.npy", "contains the input"),
    ],
)
def test_an_output_overlapping_an_input_is_refused_before_anything_is_written(
    base, out_name, input_name, problem
):
    """The issue's case: make-masks --out runs/cv where runs/cv is the --pred-probs input."""
    cv = storage.join(base, "cv")
    publish(cv, {"pred_probs.npy": b"P", "labels.npy": b"L"}, stage="s")
    before = tree(base)
    out, given = storage.join(base, out_name), storage.join(base, input_name)
    with pytest.raises(InputError, match=rf"{out_name}: {problem} .*{input_name}.*: choose another output"):
        publish(out, {"x.bin": b"x"}, stage="s", inputs=[given])
    assert tree(base) == before


def test_an_input_reached_through_a_symlink_still_overlaps(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "data")
    with pytest.raises(InputError, match="lies inside the input"):
        storage.check_output(str(tmp_path / "alias" / "out"), stage="s", inputs=[str(tmp_path / "data")])


def test_minio_and_s3_urls_of_one_endpoint_are_the_same_place(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    with pytest.raises(InputError, match="is also an input"):
        storage._check_not_overlapping("minio://b/cv/", ["s3://b/cv"])
    storage._check_not_overlapping("s3://b/cv2", ["s3://b/cv"])  # a sibling with a common prefix


def test_an_existing_file_as_output_is_refused_without_leftovers(tmp_path):
    target = tmp_path / "out"
    target.write_text("a file")
    with pytest.raises(
        InputError, match=r"out: is an existing file; an output location must be a new folder"
    ):
        publish(str(target), {"a.bin": b"a"})
    with pytest.raises(InputError, match=r"out/x: cannot be a folder: a folder above it is a file"):
        publish(str(target / "x"), {"a.bin": b"a"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and target.read_text() == "a file"


def test_overwriting_replaces_exactly_the_files_the_earlier_output_listed(base):
    out = storage.join(base, "masks")
    first = {f"train_pruned_{m}/train_mask.npy": m.encode() for m in ("argmax", "cl_pbc", "cl_both")}
    publish(out, {**first, "summary.json": b"run 1"})
    storage.write_bytes(storage.join(out, "README.txt"), b"a note of the user's")
    publish(out, {"train_pruned_argmax/train_mask.npy": b"new", "summary.json": b"run 2"})
    assert without_manifest(tree(out)) == {
        "README.txt": b"a note of the user's",
        "summary.json": b"run 2",
        "train_pruned_argmax/train_mask.npy": b"new",
    }
    assert sorted(storage.open_output(out).files) == ["summary.json", "train_pruned_argmax/train_mask.npy"]
    if storage.is_local(out):  # folders emptied by the removal go too
        assert sorted(os.listdir(out)) == [
            "README.txt",
            storage.MANIFEST,
            "summary.json",
            "train_pruned_argmax",
        ]


def test_an_earlier_output_changed_by_hand_is_not_overwritten(base):
    out = storage.join(base, "out")
    publish(out, {"summary.json": b"{}"})
    storage.write_bytes(storage.join(out, "summary.json"), b'{"edited": true}')
    before = tree(out)
    with pytest.raises(
        InputError, match=r"summary.json: changed after s wrote it .* refusing to overwrite it"
    ):
        publish(out, {"summary.json": b"new"})
    assert tree(out) == before


def test_a_new_file_over_a_file_of_the_users_is_refused(base):
    out = storage.join(base, "out")
    publish(out, {"a.bin": b"a"})
    storage.write_bytes(storage.join(out, "notes.txt"), b"mine")
    before = tree(out)
    with pytest.raises(
        InputError, match=r"holds files that are not part of the earlier s output .*notes.txt"
    ):
        publish(out, {"a.bin": b"a2", "notes.txt": b"generated"})
    assert tree(out) == before


def test_a_failed_stage_publishes_nothing(base):
    out = storage.join(base, "out")
    publish(out, {"a.bin": b"old"})
    before = tree(out)
    with pytest.raises(RuntimeError), storage.staged_output(out, stage="s") as tmp:
        storage.write_bytes(os.path.join(tmp, "a.bin"), b"half")
        raise RuntimeError("stage failed")
    assert tree(out) == before
    fresh = storage.join(base, "fresh", "deeper")
    with pytest.raises(RuntimeError), storage.staged_output(fresh, stage="s") as tmp:
        raise RuntimeError("stage failed")
    assert not storage.exists(storage.join(base, "fresh"))


def test_an_interrupted_publish_is_refused_and_a_rerun_replaces_it(base, monkeypatch):
    out = storage.join(base, "out")
    publish(out, {"a.bin": b"old a", "b.bin": b"old b", "c.bin": b"old c"})
    real_put, puts = storage._Location.put, []

    def put_then_die(self, local_file, name):
        if len(puts) == 1:
            raise KeyboardInterrupt("killed")  # like a kill: no cleanup of the output beyond this point
        puts.append(name)
        real_put(self, local_file, name)

    monkeypatch.setattr(storage._Location, "put", put_then_die)
    with pytest.raises(KeyboardInterrupt):
        publish(out, {"a.bin": b"new a", "b.bin": b"new b"})
    monkeypatch.undo()
    left = tree(out)
    assert storage.JOURNAL in left and storage.MANIFEST not in left and left["a.bin"] == b"new a"
    for read in (lambda: storage.open_output(out), lambda: storage.load_npy(storage.join(out, "b.bin"))):
        with pytest.raises(
            InputError,
            match=r"out: incomplete output: a publish by s started .* was "
            r"interrupted or is still running; rerun s with this output location",
        ):
            read()
    with pytest.raises(InputError, match="holds an output of s, not of t"):
        storage.check_output(out, stage="t")
    publish(out, {"a.bin": b"new a", "b.bin": b"new b"})
    assert without_manifest(tree(out)) == {"a.bin": b"new a", "b.bin": b"new b"}  # c.bin was the old run's


def test_a_resumable_output_replaces_some_files_and_keeps_the_rest(base):
    out = storage.join(base, "run")
    first = storage.resumable_output(out, stage="coteach")
    assert first.previous("checkpoint.pt") is None
    first.publish({"checkpoint.pt": b"epoch 1", "metrics.json": b"1"})
    first.publish({"metrics.json": b"2"})
    assert without_manifest(tree(out)) == {"checkpoint.pt": b"epoch 1", "metrics.json": b"2"}
    assert storage.open_output(out, stage="coteach").read_bytes("metrics.json") == b"2"

    rerun = storage.resumable_output(out, stage="coteach")
    assert rerun.previous("checkpoint.pt") == b"epoch 1"
    rerun.publish({"checkpoint.pt": b"epoch 2", "metrics.json": b"3"})
    assert sorted(storage.open_output(out).files) == ["checkpoint.pt", "metrics.json"]


def test_a_resumable_output_adopts_the_complete_files_of_an_interrupted_publish(base, monkeypatch):
    out = storage.join(base, "run")
    storage.resumable_output(out, stage="coteach").publish(
        {"checkpoint.pt": b"epoch 1", "metrics.json": b"1"}
    )
    real_put = storage._Location.put

    def put_checkpoint_then_die(self, local_file, name):
        real_put(self, local_file, name)
        raise KeyboardInterrupt("killed after the checkpoint")

    monkeypatch.setattr(storage._Location, "put", put_checkpoint_then_die)
    with pytest.raises(KeyboardInterrupt):
        storage.resumable_output(out, stage="coteach").publish(
            {"checkpoint.pt": b"epoch 2", "metrics.json": b"2"}
        )
    monkeypatch.undo()
    resumed = storage.resumable_output(out, stage="coteach")
    assert resumed.previous("checkpoint.pt") == b"epoch 2"  # complete, but newer than metrics.json
    resumed.publish({"metrics.json": b"2 (rewritten)"})
    output = storage.open_output(out)
    assert (
        output.read_bytes("checkpoint.pt") == b"epoch 2"
        and output.read_bytes("metrics.json") == b"2 (rewritten)"
    )


def test_copy_output_publishes_a_verified_copy(base, tmp_path):
    src = str(tmp_path / "task" / "report")
    publish(src, {"report.md": b"# r", "plots/a.png": b"png"}, stage="report render")
    copy = storage.copy_output(src, storage.join(base, "report"))
    assert copy.stage == "report render" and copy.read_bytes("plots/a.png") == b"png"
    assert copy.manifest.inputs[0]["manifest_sha256"] == storage.open_output(src).digest


STAGE_AND_WAIT = textwrap.dedent(
    """
    import sys, time
    from clpipe.components.common import storage
    with storage.staged_output(sys.argv[1], stage="s") as tmp:
        print(tmp, flush=True)
        time.sleep(600)
    """
)


def test_staging_folders_of_dead_processes_are_swept_and_live_ones_respected(tmp_path):
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", STAGE_AND_WAIT, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        staging = child.stdout.readline().strip()
        assert os.path.basename(staging).startswith(storage.STAGING_PREFIX) and os.path.dirname(
            staging
        ) == str(out)
        with pytest.raises(InputError, match="another process is writing this output right now"):
            storage.check_output(str(out), stage="s")
    finally:
        child.kill()  # SIGKILL: no cleanup runs
        child.wait()
    other_kernel = out / f"{storage.STAGING_PREFIX}000000000000-0123456789ab"
    other_kernel.mkdir()
    assert os.path.isdir(staging)  # what kill -9 leaves behind
    publish(str(out), {"a.bin": b"a"})
    assert not os.path.exists(staging)  # swept: its lock was free
    assert other_kernel.is_dir()  # made on another kernel: cannot be proven dead, left alone
    assert without_manifest(tree(str(out))) == {"a.bin": b"a"}


def test_an_unknown_scheme_is_one_line(tmp_path):
    with pytest.raises(
        InputError, match=r"^foo://x/out: unknown URL scheme 'foo': use a path or one of file://"
    ):
        storage.check_output("foo://x/out", stage="s")
