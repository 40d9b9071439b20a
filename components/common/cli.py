"""The command line of every stage, generated from its typed entry point, and the error contract.

Each stage has one typed entry point (``components/<stage>/stage.py``): a function with
keyword-only parameters whose annotations, defaults and docstring (``Args:``) are the only
place where a parameter's type, default and meaning are written. :func:`stage_main` turns it
into the stage's ``argparse`` command line (``n_folds`` -> ``--n-folds``), and the KFP
component body calls the same function through :func:`call_stage`, so the CLI, the container
entrypoint and the pipeline task share every default and every check.

Error contract (the same for every ``clpipe`` subcommand, container entrypoint and KFP task):
bad input -> one ``ERROR <stage>: <file>: <field>: <problem>`` line on stderr, exit code 2,
nothing published (also for a location the credentials may not read or write, and for a
missing optional dependency); a bug -> traceback, exit code 1; success -> exit code 0.
Entry points name a bad *parameter* by its name (``n_folds``); the command line reports it
by its flag (``--n-folds``), the pipeline by its parameter name. A problem that mentions
another parameter writes it in backquotes (``needs `train_mask```), shown the same way.
"""

from __future__ import annotations

import argparse
import collections.abc
import inspect
import logging
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from . import storage
from .errors import InputError

log = logging.getLogger("clpipe")

#: Help of the parameters several stages share; an entry point's own ``Args:`` text takes precedence.
SHARED_HELP = {
    "dataset": "ImageFolder root, .npz, or directory with *train.npz/*test.npz (path or URL)",
    "labels": "given labels: seed JSON (.json/.json.gz, file -> label), .npy in ImageFolder order, or a "
              "noisy-labels output directory (path or URL)",
    "subset_per_class": "use a class-stratified random subset of this many train images per class (0 = all)",
    "subset_seed": "seed of that subset",
    "out": "output directory (path or URL)",
    "device": "auto (the GPU if present), cpu, cuda, cuda:1 ...",
    "progress": "show a progress bar (--no-progress: logs only)",
}
#: Optional dependencies and the extra of ``pyproject.toml`` that installs them.
EXTRAS = {"torch": "train", "torchvision": "train", "PIL": "train", "matplotlib": "report"}


#: The one log line format of every command.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is *then*, not as it was when logging was configured: a
    command called in-process after a caller swapped stderr (pytest's capture, a redirection, a progress bar)
    must neither write into a closed stream nor into the previous caller's."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler assigns it; the property always answers sys.stderr
        pass


def configure_logging(verbose: bool = False) -> None:
    """Log lines to stderr at INFO (DEBUG with --verbose); repeated calls add no second handler."""
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        root.addHandler(_StderrHandler())
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


# --- the error contract ---------------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the error contract: an unknown flag, a missing one or a value of the wrong type is one
    ``ERROR <command>: command line: <problem>`` line and exit code 2, not argparse's usage block (its
    subparsers are of this class too)."""

    def error(self, message: str) -> typing.NoReturn:
        command = self.prog.removeprefix("clpipe ").strip() or "clpipe"
        sys.stderr.write(f"ERROR {command}: command line: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def error_line(stage: str, error: BaseException, names: Mapping[str, str] | None = None) -> str | None:
    """The ``ERROR <stage>: ...`` line for an error that is the user's to fix, else None (a bug).

    ``names`` maps entry-point parameter names to what the user typed (``--n-folds``).
    """
    if isinstance(error, InputError):
        names = names or {}
        source = names.get(error.source, error.source)
        where = f"{source}: {error.field}" if error.field else source
        problem = re.sub(r"`(\w+)`", lambda m: names.get(m[1], m[1]), error.problem)
        return f"ERROR {stage}: {where}: {problem}"
    if isinstance(error, PermissionError):  # refused credentials or a read-only location
        return f"ERROR {stage}: permission denied: {error}; {storage.CREDENTIALS_HINT}"
    if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in EXTRAS:
        module = error.name.split(".")[0]
        extra = EXTRAS[module]
        return (f"ERROR {stage}: {module}: not installed; this command needs the '{extra}' extra: "
                f"pip install 'clpipe[{extra}]'")
    return None


def run_entry(stage: str, entry: Callable[..., object], kwargs: Mapping[str, object],
              names: Mapping[str, str] | None = None) -> int:
    """Calls ``entry(**kwargs)`` under the error contract; returns the exit code."""
    try:
        entry(**kwargs)
    except (InputError, PermissionError, ModuleNotFoundError) as e:
        line = error_line(stage, e, names)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    return 0


def call_stage(stage: str, entry: Callable[..., object], **kwargs: object) -> None:
    """Runs a stage's entry point inside a KFP component; a failure ends the task with its exit code."""
    configure_logging()
    code = run_entry(stage, entry, kwargs)
    if code:
        sys.exit(code)


def run_stage(
    stage: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    body: Callable[[argparse.Namespace], None],
) -> int:
    """Parses ``argv`` with a hand-made parser and runs ``body`` under the error contract.

    For commands that are not stages (``compile``, ``run``, ``submit``); stages use
    :func:`stage_main`. argparse's usage errors exit 2 as well (``--help`` exits 0); they are
    returned, not raised, so callers of ``main(argv)`` always get an exit code. With subcommands
    the ERROR line names the one chosen (``ERROR data info: ...``), as :func:`stage_main` does.
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    configure_logging(getattr(args, "verbose", False))
    chosen = [getattr(args, a.dest) for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    label = " ".join([stage, *chosen])
    log.info("%s %s", label, " ".join(f"{k}={v}" for k, v in vars(args).items()))
    return run_entry(label, body, {"args": args})


# --- command lines generated from entry points ------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """How a typed entry point appears on the command line.

    Attributes:
        entry: The stage's entry point (keyword parameters with annotations and defaults).
        positional: Parameters given without a flag, in order (shown as ``NAME``).
        flags: Flags that differ from ``--<name-with-dashes>``.
        help: One line for the list of subcommands.
    """

    entry: Callable[..., object]
    positional: tuple[str, ...] = ()
    flags: Mapping[str, str] = field(default_factory=dict)
    help: str = ""


def stage_main(stage: str, commands: Command | Mapping[str, Command], argv: Sequence[str] | None,
               *, description: str = "") -> int:
    """The ``main(argv)`` of a stage: parses ``argv`` for its entry point(s) and calls it.

    ``commands`` is one :class:`Command`, or subcommand name -> Command
    (``clpipe report condition|render``).
    """
    parser = ArgumentParser(prog=f"clpipe {stage}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    names_of: dict[str, dict[str, str]] = {}
    if isinstance(commands, Command):
        names_of[""] = add_entry_arguments(parser, commands)
        by_name = {"": commands}
    else:
        sub = parser.add_subparsers(dest="_command", required=True)
        by_name = dict(commands)
        for name, command in commands.items():
            p = sub.add_parser(name, help=command.help, description=_summary(command.entry),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
            names_of[name] = add_entry_arguments(p, command)
    try:
        args = vars(parser.parse_args(argv))
    except SystemExit as e:
        return int(e.code or 0)
    chosen = args.pop("_command", "")
    configure_logging(args.pop("verbose"))
    label = f"{stage} {chosen}".strip()
    log.info("%s %s", label, " ".join(f"{k}={v}" for k, v in args.items()))
    return run_entry(label, by_name[chosen].entry, args, names_of[chosen])


def add_entry_arguments(parser: argparse.ArgumentParser, command: Command) -> dict[str, str]:
    """Adds one argument per parameter of ``command.entry``; returns parameter -> flag or NAME."""
    docs = {**SHARED_HELP, **param_docs(command.entry)}
    hints = typing.get_type_hints(command.entry)
    names: dict[str, str] = {}
    for name, param in inspect.signature(command.entry).parameters.items():
        kind, choices, many = _argument_type(hints[name])
        required = param.default is inspect.Parameter.empty
        default = None if required else param.default
        help_ = docs.get(name, "").replace("%", "%%")  # argparse formats help with %: "70 %" broke --help
        if name in command.positional:
            names[name] = name.upper()
            nargs = ("+" if required else "*") if many else (None if required else "?")
            parser.add_argument(name, metavar=names[name], type=kind, nargs=nargs, choices=choices,
                                help=help_, **({} if required else {"default": default}))
        elif kind is bool and default is None:  # unset = decided later (a recipe's value): --x / --no-x
            names[name] = command.flags.get(name) or f"--{_dashed(name)}"
            parser.add_argument(names[name], dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_)
        elif kind is bool:
            names[name] = command.flags.get(name) or f"--{'no-' if default else ''}{_dashed(name)}"
            parser.add_argument(names[name], dest=name, action="store_false" if default else "store_true",
                                help=help_)
        else:
            names[name] = command.flags.get(name, f"--{_dashed(name)}")
            shown = "" if default in (None, "", ()) else f" (default: {_shown(default)})"
            parser.add_argument(names[name], dest=name, type=kind, nargs="+" if many else None, choices=choices,
                                required=required, default=default, help=help_ + shown)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return names


def param_docs(func: Callable[..., object]) -> dict[str, str]:
    """Parameter -> its text in the Google-style ``Args:`` section of ``func``'s docstring."""
    docs: dict[str, str] = {}
    lines = inspect.getdoc(func).splitlines() if func.__doc__ else []
    in_args, current = False, None
    for line in lines:
        if re.match(r"^(Args|Arguments):\s*$", line):
            in_args = True
            continue
        if in_args and re.match(r"^\S", line):  # the next section
            break
        match = re.match(r"^    (\w+(?:, \w+)*)(?: \(.*?\))?:\s*(.*)$", line) if in_args else None
        if match:
            current = match.group(1).split(", ")
            for name in current:
                docs[name] = match.group(2)
        elif in_args and current and line.strip():
            for name in current:
                docs[name] += " " + line.strip()
    return docs


def _summary(func: Callable[..., object]) -> str:
    """The docstring of ``func`` up to its ``Args:`` section (the command's description)."""
    text = inspect.getdoc(func) or ""
    return re.split(r"^(?:Args|Arguments|Returns|Raises):\s*$", text, flags=re.MULTILINE)[0].strip()


def _argument_type(hint: object) -> tuple[type, tuple | None, bool]:
    """(argparse type, choices or None, takes several values) of an annotation."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None
        hint = next(a for a in args if a is not type(None))
        return _argument_type(hint)
    if typing.get_origin(hint) is typing.Literal:
        return type(args[0]), args, False
    if typing.get_origin(hint) in (list, tuple, collections.abc.Sequence):
        kind, choices, _ = _argument_type(args[0])
        return kind, choices, True
    if hint in (int, float, str, bool):
        return hint, None, False
    raise TypeError(f"no command-line form for the annotation {hint!r}")


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def _shown(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


# --- hand-made parsers of the stages not yet converted to entry points --------------------------------


def add_view_arguments(parser: argparse.ArgumentParser, *, labels_flag: str = "--labels") -> None:
    """Flags that pick the training examples: dataset, given labels, optional subset."""
    parser.add_argument("--dataset", required=True,
                        help="ImageFolder root, .npz, or directory with *train.npz/*test.npz (path or URL)")
    parser.add_argument(labels_flag, dest="labels", required=True,
                        help="given labels: seed JSON (.json/.json.gz, file -> label) or .npy in ImageFolder order")
    add_subset_arguments(parser)


def add_subset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subset-per-class", type=int, default=0,
                        help="use a class-stratified random subset of this many train images per class (0 = all)")
    parser.add_argument("--subset-seed", type=int, default=0, help="seed of that subset")

