"""``clpipe coteach`` in a base install (``pip install -e .``, the CPU image's set): no torch.

The command must print its help (exit 0), and running it must print one line naming the
extra to install (exit 2), nothing else and nothing written. A fresh interpreter with an
import hook that refuses the 'train' extra's packages stands in for an environment without them.
"""

import subprocess
import sys

WITHOUT_TRAIN_EXTRA = """
import sys

class NotInstalled:
    '''Finds no module of the 'train' extra, as in an environment without it.'''

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision", "PIL"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from clpipe.cli import main
sys.exit(main(sys.argv[1:]))
"""


def clpipe_without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TRAIN_EXTRA, *args], check=False, capture_output=True,
                          text=True, timeout=120)


def test_help_needs_no_torch():
    done = clpipe_without_torch("coteach", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: clpipe coteach") and "--forget-rate" in done.stdout
    assert done.stderr == ""


def test_a_run_without_torch_names_the_missing_extra_in_one_line(tmp_path):
    out = tmp_path / "run"
    done = clpipe_without_torch("coteach", "--train-labels", str(tmp_path / "labels.npy"), "--out", str(out),
                                "--epochs", "2", str(tmp_path / "dataset"))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    expected = "ERROR coteach: torch: not installed; this command needs the 'train' extra: pip install 'clpipe[train]'"
    assert errors == [expected]
    assert "Traceback" not in done.stderr
    assert not out.exists()
