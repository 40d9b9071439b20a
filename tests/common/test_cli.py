import argparse

import pytest
from clpipe.components.common import cli
from clpipe.components.common.errors import InputError

from clpipe.cli import COMMANDS
from clpipe.cli import main as clpipe_main


def parser():
    p = argparse.ArgumentParser(prog="t")
    p.add_argument("--x", type=int, required=True)
    return p


def body_raising(exc):
    def body(args):
        raise exc

    return body


def test_error_contract(capsys):
    assert cli.run_stage("t", parser(), ["--x", "1"], lambda args: None) == 0
    assert cli.run_stage("t", parser(), ["--x", "1"], body_raising(InputError("f.json", "k", "bad"))) == 2
    assert "ERROR t: f.json: k: bad" in capsys.readouterr().err
    assert cli.run_stage("t", parser(), ["--x", "1"], body_raising(PermissionError("Access Denied"))) == 2
    assert "ERROR t: permission denied: Access Denied" in capsys.readouterr().err
    assert cli.run_stage("t", parser(), ["--x", "nope"], lambda args: None) == 2  # argparse usage error
    assert cli.run_stage("t", parser(), ["--help"], lambda args: None) == 0


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_prints_its_help(command, capsys):
    """A '%' in a docstring (``70 %``) once made ``clpipe noisy-labels --help`` a TypeError."""
    assert clpipe_main([command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: clpipe {command}")
