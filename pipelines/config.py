"""The pipeline's parameters, and reading them from a YAML config file and command-line flags.

:class:`BenchmarkParams` is the single list of the pipeline's run-time parameters: the
pipeline function (:mod:`.pipeline`) takes exactly these names with these defaults (a test
holds them together), ``clpipe run`` and ``clpipe submit`` read them from a YAML file
and/or flags, and :meth:`BenchmarkParams.arguments` turns them into the KFP run arguments.
Two of them also choose what the pipeline is built with when ``clpipe run``/``submit`` build it:
``resolution`` (a first task preparing the images) and ``coteach`` (whether Co-Teaching runs
after the label errors are found; it is never a pipeline parameter itself).

Config file (every key optional except ``dataset`` and ``conditions``; flags override it)::

    dataset: ../shared/data/cifar10          # path or URL; local paths are resolved by `clpipe run`
    output: runs/demo                        # clpipe run only: where the report goes (path or URL)
    conditions:
      - {name: pub-n0.4-s0.2, labels: <label file>, noise: 0.4, sparsity: 0.2, pred_probs: <pyx .npy>}
      - {name: gen-n0.2-s0, noise: 0.2, sparsity: 0.0, seed: 1}
    n_folds: 2
    fold_arch: airbench-tiny
    coteach: auto                            # on | off | auto: on when the dataset has a test split
    ...                                      # any other field of BenchmarkParams
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from clpipe.components.common import storage
from clpipe.components.common.conditions import Condition, resolve_forget_rate
from clpipe.components.common.datasets import ALL_ROWS, SUBSET_SEED
from clpipe.components.common.errors import InputError
from clpipe.components.common.imaging import check_resolution
from clpipe.components.common.methods import CL_METHODS, NO_PRUNING
from clpipe.components.coteach.recipes import RECIPE_NAMES as COTEACH_RECIPES
from clpipe.components.coteach.stage import coteach as coteach_stage
from clpipe.components.fold_train.folds import FOLD_SPLITS, check_n_folds
from clpipe.components.fold_train.recipes import ARCHS
from clpipe.components.fold_train.stage import fold_train
from clpipe.components.make_masks.review import DEFAULT_ISSUE_METHOD


def default_of(entry_point, parameter: str):
    """The stage entry point's own default of ``parameter``: each default is written once, in the signature of
    the stage that uses it (the entry points are torch-free to import)."""
    return inspect.signature(entry_point).parameters[parameter].default


#: Co-Teaching runs per condition: the five confident-learning methods and plain Co-Teaching.
ALL_METHODS = (NO_PRUNING, *CL_METHODS)
#: The paper's 12 Table-2 conditions, generated with seed 0 (= the published label files).
PAPER_CONDITIONS = tuple(
    Condition(name=f"n{noise}-s{sparsity}", noise=noise, sparsity=sparsity, seed=0)
    for noise in (0.2, 0.4, 0.6)
    for sparsity in (0.0, 0.2, 0.4, 0.6)
)
MASK_COMPAT = ("", "cleanlab-2021")
STRATIFY_BY = ("given", "dataset")
#: ``resolution: 0``: the images' own size (then they must all have the same one).
NATIVE_RESOLUTION = 0
#: ``coteach``: train Co-Teaching (``on``), find label errors only (``off``), or ``auto``: on exactly when the
#: dataset has a test split to score it on (``pipelines/pipeline.py`` ``runs_coteach``).
COTEACH = ("auto", "on", "off")

#: Help of each parameter (flags and docs); "0 = ..." marks recipe defaults.
HELP = {
    "dataset": "ImageFolder root, manifest (.csv/.jsonl), .npz, directory with *train.npz/*test.npz, or a "
    "'clpipe data prepare' output (path or URL)",
    "resolution": "training resolution in pixels: images resized and centre-cropped once, by a first "
    "'prepare' task (0 = their own size)",
    "coteach": "train Co-Teaching after finding the label errors: 'on', 'off' (label errors only) or 'auto' "
    "(on when the dataset has a test split, which Co-Teaching is scored on)",
    "conditions": "noise conditions (name plus labels URL, or noise/sparsity/seed; optional pred_probs URL)",
    "n_folds": "K of the K-fold cross-validation (paper: 4)",
    "fold_arch": f"fold-trainer network, one of {ARCHS} (paper: resnet50; auto: by the resolution)",
    "fold_epochs": "fold-trainer epochs (0 = the architecture's recipe: resnet50 350, airbench 10)",
    "fold_batch_size": "fold-trainer batch size (0 = the recipe's: resnet50 64, airbench 1024)",
    "fold_seed": "seed of the fold split and the fold training",
    "fold_stratify_by": "stratify the folds by the 'given' labels or the 'dataset' labels (the seed's choice)",
    "fold_split": f"fold-split rule, one of {FOLD_SPLITS} (sklearn-0.20: the published pred_probs' split)",
    "methods": f"Co-Teaching runs per condition, from {ALL_METHODS} (none = no pruning)",
    "mask_compat": "'' = cleanlab 2.9 semantics, 'cleanlab-2021' = the seed's early-2021 ones",
    "issue_method": f"the confident-learning method behind is_label_issue in label_issues.csv and the review "
    f"gallery, one of {CL_METHODS}",
    "coteach_recipe": f"Co-Teaching recipe, one of {COTEACH_RECIPES} (paper's Table 2: feb2020)",
    "coteach_epochs": "Co-Teaching schedule length (0 = the recipe's; feb2020: 250, trains epochs 1..E-1)",
    "coteach_batch_size": "Co-Teaching batch size (0 = the recipe's, 128)",
    "coteach_lr": "Co-Teaching Adam learning rate (0 = the recipe's, 0.001)",
    "coteach_forget_rate": "'recipe', 'noise' (half the condition's noise amount, the JAIR rule) or a number",
    "coteach_cnn_width": "base width of the Co-Teaching CNN (0 = the paper's 128)",
    "coteach_seed": "Co-Teaching seed",
    "train_per_class": "train images per class, class-stratified subset (0 = all)",
    "test_per_class": "test images per class scored by Co-Teaching (0 = all)",
    "subset_seed": "seed of the train and test subsets",
}


@dataclass(frozen=True)
class BenchmarkParams:
    """The run-time parameters of the pipeline (see :data:`HELP`)."""

    dataset: str
    resolution: int = NATIVE_RESOLUTION
    conditions: tuple[Condition, ...] = PAPER_CONDITIONS
    n_folds: int = default_of(fold_train, "n_folds")
    fold_arch: str = default_of(fold_train, "arch")
    fold_epochs: int = 0
    fold_batch_size: int = 0
    fold_seed: int = default_of(fold_train, "seed")
    fold_stratify_by: str = default_of(fold_train, "stratify_by")
    fold_split: str = default_of(fold_train, "fold_split")
    coteach: str = COTEACH[0]
    methods: tuple[str, ...] = ALL_METHODS
    mask_compat: str = ""
    issue_method: str = DEFAULT_ISSUE_METHOD
    coteach_recipe: str = default_of(coteach_stage, "recipe")
    coteach_epochs: int = 0
    coteach_batch_size: int = 0
    coteach_lr: float = 0.0
    coteach_forget_rate: str = "recipe"
    coteach_cnn_width: int = 0
    coteach_seed: int = default_of(coteach_stage, "seed")
    train_per_class: int = ALL_ROWS
    test_per_class: int = ALL_ROWS
    subset_seed: int = SUBSET_SEED

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """Refuses what would only fail inside a task, minutes later, naming the parameter."""
        if not self.dataset:
            raise InputError("parameters", "dataset", "missing")
        if not self.conditions:
            raise InputError("parameters", "conditions", "at least one condition is needed")
        names = [c.name for c in self.conditions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InputError("parameters", "conditions", f"names given more than once: {duplicates}")
        choices = {
            "fold_arch": ARCHS,
            "fold_stratify_by": STRATIFY_BY,
            "fold_split": FOLD_SPLITS,
            "coteach_recipe": COTEACH_RECIPES,
            "mask_compat": MASK_COMPAT,
            "issue_method": CL_METHODS,
            "coteach": COTEACH,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError("parameters", name, f"must be one of {allowed}, got {getattr(self, name)!r}")
        unknown = [m for m in self.methods if m not in ALL_METHODS]
        if not self.methods or unknown or len(set(self.methods)) != len(self.methods):
            raise InputError(
                "parameters",
                "methods",
                f"expected distinct methods from {ALL_METHODS}, got {list(self.methods)}",
            )
        try:
            check_n_folds(self.n_folds)
        except InputError as e:
            raise InputError("parameters", "n_folds", e.problem) from None
        for name in (
            "fold_epochs",
            "fold_batch_size",
            "coteach_epochs",
            "coteach_batch_size",
            "coteach_lr",
            "coteach_cnn_width",
            "train_per_class",
            "test_per_class",
        ):
            if getattr(self, name) < 0:
                raise InputError("parameters", name, f"must be >= 0 (0 = default), got {getattr(self, name)}")
        try:
            resolve_forget_rate(self.coteach_forget_rate, 0.0)
        except InputError as e:
            raise InputError("parameters", "coteach_forget_rate", e.problem) from None
        if self.resolution != NATIVE_RESOLUTION:
            try:
                check_resolution(self.resolution)
            except InputError as e:
                raise InputError("parameters", "resolution", f"{e.problem} (0 = the images' own size)") from None

    def arguments(self) -> dict:
        """The KFP run arguments: conditions as items with every key, tuples as lists."""
        args = {f.name: getattr(self, f.name) for f in fields(self)}
        args["conditions"] = [c.to_dict() for c in self.conditions]
        args["methods"] = list(self.methods)
        return args

    def with_local_paths_resolved(self, base: str) -> BenchmarkParams:
        """Relative local paths (dataset, label and pred_probs files) made absolute against ``base``."""

        def resolve(url: str) -> str:
            return (
                url
                if not url or "://" in url or os.path.isabs(url)
                else os.path.normpath(os.path.join(base, url))
            )

        conditions = tuple(
            dataclasses.replace(c, labels=resolve(c.labels), pred_probs=resolve(c.pred_probs))
            for c in self.conditions
        )
        return dataclasses.replace(self, dataset=resolve(self.dataset), conditions=conditions)


#: Python types of the scalar fields by their annotation (a string under postponed annotations).
_FIELD_TYPES: Mapping[str, type] = {"int": int, "float": float, "str": str}


def params_from_mapping(data: Mapping, source: str) -> BenchmarkParams:
    """BenchmarkParams from a mapping (a parsed config), types checked, naming ``source``."""
    known = {f.name: f for f in fields(BenchmarkParams)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(source, unknown[0], f"unknown parameter; the parameters are {sorted(known)}")
    values = {}
    for name, value in data.items():
        kind = _FIELD_TYPES.get(known[name].type)
        if name == "conditions":
            if not isinstance(value, list):
                raise InputError(source, name, "expected a list of conditions")
            value = tuple(
                Condition.from_dict(c, source=f"{source}: conditions[{i}]") for i, c in enumerate(value)
            )
        elif name == "methods":
            value = tuple(_method_list(value, source))
        elif name == "coteach" and isinstance(value, bool):  # YAML 1.1 reads an unquoted on/off as a boolean
            value = "on" if value else "off"
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif kind is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise InputError(source, name, f"expected {kind.__name__}, got {value!r}")
        values[name] = value
    if "dataset" not in values:
        raise InputError(source, "dataset", "missing")
    return BenchmarkParams(**values)


def _method_list(value, source: str) -> list[str]:
    if isinstance(value, str):
        return [m for m in value.split(",") if m]
    if isinstance(value, list) and all(isinstance(m, str) for m in value):
        return value
    raise InputError(source, "methods", f"expected a list of method ids, got {value!r}")


def parse_condition_flag(text: str) -> dict:
    """``name=a,noise=0.4,sparsity=0.2,seed=1`` (or ``labels=URL``, ``pred_probs=URL``) -> a mapping."""
    item: dict = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise InputError("--condition", text, f"expected key=value pairs separated by ',', got {part!r}")
        key = key.strip()
        if key in ("noise", "sparsity"):
            value = _number(value, float, text, key)
        elif key == "seed":
            value = _number(value, int, text, key)
        item[key] = value
    return item


def _number(value: str, kind: type, text: str, key: str):
    try:
        return kind(value)
    except ValueError:
        raise InputError("--condition", text, f"{key}: expected a {kind.__name__}, got {value!r}") from None


def load_config(url: str) -> dict:
    """A YAML config file as a mapping (path or URL)."""
    import yaml

    try:
        data = yaml.safe_load(storage.read_bytes(url))
    except yaml.YAMLError as e:  # its str() spans several lines (context, snippet, marks)
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise InputError(url, "", f"not valid YAML: {where}{problem}") from None
    if not isinstance(data, dict):
        raise InputError(url, "", "expected a mapping of parameter names to values")
    return data


def add_param_arguments(parser: argparse.ArgumentParser) -> None:
    """``CONFIG`` and one flag per parameter (``--n-folds``, ``--condition`` repeatable, ...)."""
    parser.add_argument(
        "config", nargs="?", metavar="CONFIG", help="YAML config file (path or URL); flags override it"
    )
    group = parser.add_argument_group("pipeline parameters (override the config)")
    for f in fields(BenchmarkParams):
        if f.name == "conditions":
            group.add_argument(
                "--condition",
                dest="conditions",
                action="append",
                type=str,
                metavar="SPEC",
                help="a condition, e.g. name=g,noise=0.4,sparsity=0.2,seed=0 or "
                "name=p,labels=URL,pred_probs=URL; repeat for more (replaces the config's)",
            )
        elif f.name == "methods":
            group.add_argument("--methods", metavar="M1,M2", help=HELP[f.name])
        else:
            group.add_argument(
                f"--{f.name.replace('_', '-')}", dest=f.name, type=_FIELD_TYPES[f.type], help=HELP[f.name]
            )


def params_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> tuple[BenchmarkParams, dict]:
    """The parameters from ``CONFIG`` and flags, plus the config's other keys named in ``extra``."""
    data = load_config(args.config) if args.config else {}
    others = {key: data.pop(key) for key in extra if key in data}
    for f in fields(BenchmarkParams):
        value = getattr(args, f.name)
        if value is None:
            continue
        if f.name == "conditions":
            value = [parse_condition_flag(text) for text in value]
        data[f.name] = value
    try:
        return params_from_mapping(data, args.config or "flags"), others
    except InputError as e:
        raise in_config(e, args) from None


def in_config(error: InputError, args: argparse.Namespace) -> InputError:
    """A check of the parameters (source ``parameters`` or ``condition 'x'``) on a value the config
    file gave (no flag overrode it), re-sourced to that file, so the line names where to fix it; any
    other error as it is."""
    checked = error.source == "parameters" or error.source.startswith("condition ")
    if not checked or not args.config or error.source.startswith(args.config):
        return error
    key = "conditions" if error.source.startswith("condition ") else error.field
    if getattr(args, key, None) is not None:  # the value came from a flag
        return error
    field = error.field if error.source == "parameters" else f"{error.source}: {error.field}"
    return InputError(args.config, field, error.problem)
