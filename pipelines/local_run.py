"""``clpipe run``: the pipeline on this machine with kfp.local, no cluster and no Docker.

Runs the very pipeline definition that is compiled for the cluster, with kfp.local's
SubprocessRunner: every task is a subprocess in this Python environment (the components
are lightweight Python components, so no image is pulled and nothing is pip-installed).
The GPU is used when torch sees one. kfp.local keeps artifacts under a local pipeline root
(``OUTPUT/kfp`` for a local OUTPUT, else a temporary directory); at the end the report
directory is published to ``OUTPUT/report`` (a path or any fsspec URL) and its table printed.

With ``--runner docker`` every task runs instead in its stage container (kfp.local's
DockerRunner, the images of ``docker/build.sh``), as on a cluster: the local inputs are
mounted read-only at their own paths, the tasks run as the images' user.

Example:
  clpipe run pipelines/configs/demo.yaml
  clpipe run pipelines/configs/demo.yaml --runner docker [--registry localhost:5000/clpipe] [--docker-gpus]
  clpipe run --dataset ../shared/data/cifar10 --condition name=g,noise=0.2 --n-folds 2 \\
      --fold-arch airbench-tiny --train-per-class 100 --output runs/mini
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from clpipe.components.common import cli, storage
from clpipe.components.common.cli import LOG_FORMAT, ArgumentParser
from clpipe.components.common.errors import InputError
from clpipe.components.common.image import LOCAL_IMAGES, LOCAL_REGISTRY, Images
from clpipe.components.common.kfp_component import TaskSettings

from .config import BenchmarkParams, add_param_arguments, in_config, params_from_args

log = logging.getLogger("clpipe")
#: Training tasks kfp.local can run at once: 2 loop iterations of conditions x 2 of folds/methods.
CONCURRENT_TRAINING_TASKS = 4


RUNNERS = ("subprocess", "docker")


@dataclass(frozen=True)
class Runner:
    """How kfp.local runs the tasks: ``subprocess`` (this environment) or ``docker`` (the stage images).

    Attributes:
        kind: One of :data:`RUNNERS`.
        images: The stage images of the docker runner.
        gpus: Give the containers the host's GPUs (``docker run --gpus all``).
    """

    kind: str = "subprocess"
    images: Images = LOCAL_IMAGES
    gpus: bool = False


@dataclass(frozen=True)
class LocalRun:
    """Where a local run left its results and log, what it found, and how long it took."""

    report: str
    pipeline_root: str
    log: str
    markdown: str
    results: list
    wall_s: float


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="clpipe run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_param_arguments(p)
    p.add_argument(
        "--output",
        help="where the report goes: a directory or fsspec URL (config key 'output'; default runs/<time>)",
    )
    p.add_argument(
        "--pipeline-root",
        help="kfp.local's artifact directory (default OUTPUT/kfp, or a temporary "
        "directory when OUTPUT is a URL)",
    )
    p.add_argument("--runner", choices=RUNNERS, default="subprocess",
                   help="run each task as a subprocess here (default) or in its stage container")
    p.add_argument("--registry", default=LOCAL_REGISTRY,
                   help=f"registry of the stage images for --runner docker (default {LOCAL_REGISTRY})")
    p.add_argument("--docker-gpus", action="store_true", help="with --runner docker: give the tasks the host's GPUs")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _local_root(output: str, pipeline_root: str | None) -> str:
    if pipeline_root:
        return os.path.abspath(pipeline_root)
    if storage.is_local(output):
        return os.path.abspath(os.path.join(output, "kfp"))
    return tempfile.mkdtemp(prefix="clpipe-kfp-")


@contextlib.contextmanager
def _print_restored():
    """Restores ``print``: kfp.local 2.17.3 swaps ``builtins.print`` for an indenting one around each
    task, and with tasks in parallel threads the swaps can interleave and leave one behind."""
    original = builtins.print
    try:
        yield
    finally:
        builtins.print = original


def task_threads() -> int:
    """CPU threads of one training task: the cores shared by the tasks kfp.local runs at once."""
    return max(1, (os.cpu_count() or 1) // CONCURRENT_TRAINING_TASKS)


@contextlib.contextmanager
def _task_environment():
    """Environment of the task subprocesses: a share of the CPU threads each, output unbuffered.

    ``OMP_NUM_THREADS`` (unless set): kfp.local runs up to 2 iterations of each loop at once, so
    up to 4 training tasks (2 conditions x 2 methods) share the machine; torch's default of one
    thread per core in each of them oversubscribes the CPU many times over (measured: 4-8x
    slower on 2 cores). ``PYTHONUNBUFFERED``: a task's log lines reach the progress bars as
    they are written, not in 8 KiB blocks. The variables are restored afterwards.
    """
    settings = {"PYTHONUNBUFFERED": "1"}
    if "OMP_NUM_THREADS" not in os.environ:
        settings["OMP_NUM_THREADS"] = str(task_threads())
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def _input_urls(params: BenchmarkParams) -> list[tuple[str, str]]:
    """(parameter, URL) of every input the run reads: the dataset, label and pred_probs files."""
    return [("dataset", params.dataset)] + [
        (f"conditions: {c.name}: {key}", url)
        for c in params.conditions
        for key, url in (("labels", c.labels), ("pred_probs", c.pred_probs))
        if url
    ]


def check_inputs(params: BenchmarkParams) -> None:
    """Refuses missing inputs before any task starts (a task would fail on them minutes later)."""
    for where, url in _input_urls(params):
        if not storage.exists(url):
            raise InputError(url, where, "not found")


def _local_inputs(params: BenchmarkParams) -> list[str]:
    """Local directories holding the run's inputs (dataset, label and pred_probs files)."""
    urls = [url for _, url in _input_urls(params)]
    dirs = {os.path.abspath(u if os.path.isdir(u) else os.path.dirname(u)) for u in urls if storage.is_local(u)}
    return sorted(d for d in dirs if not any(d.startswith(other + os.sep) for other in dirs))


def expected_tasks(params: BenchmarkParams, prepare: bool = False, coteach: bool = True) -> dict[str, int]:
    """How many tasks of each component the pipeline runs for ``params`` (the progress bars' totals);
    ``prepare``: whether it starts with the prepare task; ``coteach``: whether Co-Teaching runs."""
    n = len(params.conditions)
    given = sum(1 for c in params.conditions if c.pred_probs)
    both_kinds = 0 < given < n  # then the report task is the adapter over both loops
    return {
        "prepare-dataset": int(prepare),
        "noisy-labels": n,
        "given-pred-probs": given,
        "plan-folds": n - given,
        "fold-train": (n - given) * params.n_folds,
        "combine-folds": n - given,
        "make-masks": n,
        "coteach": n * len(params.methods) * coteach,
        "condition-results": n * coteach,
        "detection-results": n * (not coteach),
        "report": int(not both_kinds),
        "report-of-both-kinds": int(both_kinds),
    }


@contextlib.contextmanager
def _root_logging_to(stream):
    """Sends the root logger's records (kfp.local logs to it outside its own tasks too) to ``stream``."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.handlers[:] = [handler]
    try:
        yield
    finally:
        root.handlers[:] = handlers


def _log_path(output: str, root: str) -> str:
    """``OUTPUT/run.log`` for a local OUTPUT, else next to kfp.local's artifacts."""
    folder = output if storage.is_local(output) else root
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, "run.log")


class _Tee:
    """Writes to several text streams (the log file and, with --verbose, the terminal)."""

    def __init__(self, *streams) -> None:
        self.streams = streams

    def write(self, text: str) -> None:
        for stream in self.streams:
            stream.write(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def _init_runner(runner: Runner, params: BenchmarkParams, root: str) -> TaskSettings:
    """Points kfp.local at the runner; returns the task settings the pipeline is built with."""
    from kfp import local

    if runner.kind == "subprocess":
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, raise_on_error=True)
        return TaskSettings()
    try:
        import docker
    except ImportError:
        raise InputError("--runner", "docker", "needs the docker package: pip install docker") from None
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o1777)  # kfp.local makes the run folders as this user; the tasks run as the images' user
    # Each input directory appears in the containers at the path the parameters name.
    kwargs = {"mounts": [docker.types.Mount(target=d, source=os.path.realpath(d), type="bind", read_only=True)
                         for d in _local_inputs(params)]}
    if runner.gpus:
        kwargs["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    local.init(runner=local.DockerRunner(**kwargs), pipeline_root=root, raise_on_error=True)
    return TaskSettings(images=runner.images, gpus=0)  # GPUs are the docker runner's, not a k8s request


def run_locally(
    params: BenchmarkParams,
    output: str,
    pipeline_root: str | None = None,
    runner: Runner = Runner(),
    *,
    verbose: bool = False,
) -> LocalRun:
    """Runs the pipeline with kfp.local and publishes the report directory to ``OUTPUT/report``.

    kfp.local's output (its own log, every task's executor input and log) goes to ``run.log``
    (:func:`_log_path`) and, with ``verbose``, to stderr as well; stderr shows one progress bar per
    stage (:mod:`.progress`).
    """
    from .pipeline import needs_prepare, pipeline_arguments, pipeline_for, runs_coteach
    from .progress import RunLog, StageBars

    if runner.kind not in RUNNERS:
        raise InputError("--runner", "", f"must be one of {RUNNERS}, got {runner.kind!r}")
    check_inputs(params)
    prepare, coteach = needs_prepare(params), runs_coteach(params)
    root = _local_root(output, pipeline_root)
    settings = _init_runner(runner, params, root)
    log_path = _log_path(output, root)
    started = time.perf_counter()
    bars = StageBars(expected_tasks(params, prepare, coteach))
    with open(log_path, "w", encoding="utf-8", buffering=1) as log_file:  # line-buffered: tail -f works
        stream = RunLog(_Tee(log_file, sys.stderr) if verbose else log_file, bars)
        with (
            warnings.catch_warnings(),
            _print_restored(),
            _task_environment(),
            contextlib.redirect_stdout(stream),
            contextlib.redirect_stderr(stream),
            _root_logging_to(stream),
        ):
            # Expected here: cluster placement (GPU, resources, Kubernetes settings) has no effect locally,
            # and the stage images' code is this environment's clpipe.
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*")
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            try:
                pipeline = pipeline_for(params, settings, prepare, coteach)
                task = pipeline(**pipeline_arguments(params, prepare, coteach))
            finally:
                bars.close()
    wall_s = time.perf_counter() - started
    report = storage.join(output, "report")
    storage.copy_output(task.output.path, report)
    markdown = storage.read_bytes(storage.join(report, "report.md")).decode()
    results = storage.load_json(storage.join(report, "results.json"))
    return LocalRun(report=report, pipeline_root=root, log=log_path, markdown=markdown, results=results,
                    wall_s=wall_s)


def trained_models(results: Sequence[dict]) -> list[tuple[str, str, str]]:
    """(condition, method, model folder) of every Co-Teaching run of a local run that exported a model: the
    ``model/`` folder of each run the condition records name (kfp.local's task outputs, local paths)."""
    from clpipe.components.common.artifacts import CoteachRun

    models = []
    for record in results:
        for key, url in record["sources"].items():
            model = storage.join(url, CoteachRun.MODEL)
            if key.startswith("runs/") and storage.exists(model):
                models.append((record["condition"]["name"], CoteachRun.read(url).metrics["method"], model))
    return models


def run(args: argparse.Namespace) -> None:
    from clpipe.components.common.artifacts import LabelIssues, Review
    from clpipe.components.report.cli import REVIEW_PREFIX
    from clpipe.components.report.gallery import GALLERY_FILE
    from clpipe.components.report.logic import headline_markdown

    params, others = params_from_args(args, extra=("output",))
    output = args.output or others.get("output") or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    runner = Runner(args.runner, Images.for_registry(args.registry), args.docker_gpus)
    try:
        result = run_locally(params.with_local_paths_resolved(os.getcwd()), output, args.pipeline_root, runner,
                             verbose=args.verbose)
    except InputError as e:  # a parameter checked against the dataset (coteach) names the config that set it
        raise in_config(e, args) from None
    print()
    print(headline_markdown(result.results))
    print(f"report: {storage.join(result.report, 'report.html')} (also report.md, results.csv, detection.csv, "
          "plots/)")
    for record in result.results:
        if record.get("review"):
            folder = storage.join(result.report, REVIEW_PREFIX + record["condition"]["name"])
            print(f"label issues to review ({record['condition']['name']}): {storage.join(folder, GALLERY_FILE)} "
                  f"(ranked: {storage.join(folder, LabelIssues.FILE)}; labels without them: "
                  f"{storage.join(folder, Review.CLEANED)})")
    for name, method, model in trained_models(result.results):
        print(f"trained model ({name}, {method}): {model} (clpipe predict --model {model} IMAGES...)")
    print(f"log: {result.log}; task outputs: {result.pipeline_root}; wall time {result.wall_s:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    level = log.level
    if not {"-v", "--verbose"} & set(argv):
        log.setLevel(logging.WARNING)  # the run's own INFO lines would bury the progress bars
    try:
        return cli.run_stage("run", build_parser(), argv, run)
    finally:
        log.setLevel(level)
