"""Publishing to a local disk under ``kill -9``: the real ``make-masks`` CLI in a subprocess SIGKILLs
itself at one step of a publish (tests/storage/faults.py); then a reader looks, and the same command
is run again. A reader must see the earlier complete output, the new one, or a refusal; never a mix.
The rerun must end with exactly the new output, no staging folder and the user's file untouched."""

import os
import signal

import pytest
from clpipe.components.common import storage

from clpipe.cli import main as clpipe_main

from . import faults


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return faults.reference_runs(str(tmp_path_factory.mktemp("fault-inputs")))


#: (earlier complete run or None, the killed run, its methods, kill point, what a reader sees after the kill)
SCENARIOS = {
    "first publish, killed while computing": (None, "b", (), "before:publish:1", "output not found"),
    "first publish, killed at the 3rd of 6 files": (None, "b", (), "before:put:3", "incomplete output"),
    "overwrite, killed while computing": ("a", "b", (), "before:publish:1", "a"),
    "overwrite, killed after writing the journal": ("a", "b", (), "after:write:1", "a"),
    "overwrite, killed at the 3rd of 6 files": ("a", "b", (), "before:put:3", "incomplete output"),
    "overwrite with fewer methods, killed removing stale masks": (
        "a",
        "b",
        ("argmax",),
        "after:delete:3",
        "incomplete output",
    ),
    "overwrite, killed after writing the new manifest": ("a", "b", (), "after:write:2", "b"),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_kill_9_during_a_local_publish(runs, tmp_path, scenario):
    inputs, refs = runs
    earlier, run, methods, kill_at, expected = SCENARIOS[scenario]
    out = str(tmp_path / "masks")
    if earlier:
        assert clpipe_main(faults.make_masks_argv(inputs, earlier, out)) == 0
        (tmp_path / "masks" / "notes.txt").write_text("the user's")
    argv = faults.make_masks_argv(inputs, run, out, *methods)

    killed = faults.clpipe(argv, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after_kill = faults.seen(out)
    if expected in refs:
        assert after_kill == refs[expected]
    else:  # a refusal naming the output, never a mix of two runs
        assert isinstance(after_kill, str) and after_kill.startswith(f"{out}: {expected}"), after_kill

    assert clpipe_main(argv) == 0  # the same command again
    new = "b argmax" if methods else "b"
    assert faults.seen(out) == refs[new]
    on_disk = {os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs}
    assert on_disk == {*refs[new], storage.MANIFEST, *(["notes.txt"] if earlier else [])}
    if earlier:
        assert (tmp_path / "masks" / "notes.txt").read_text() == "the user's"
