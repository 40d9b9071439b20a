"""The clpipe benchmark as one Kubeflow Pipelines v2 pipeline.

Conditions come in two kinds, each with its own loop (all conditions of a loop in parallel,
``parallelism`` from the compile-time settings) and its own sub-pipeline:

- **cross-validated** (``cross-validated-condition``): noisy labels (CPU) -> plan the folds
  (CPU) -> train every fold (GPU, in parallel) -> combine them (CPU, ``dsl.Collected``);
- **given pred_probs** (``given-pred-probs-condition``): noisy labels (CPU) -> the condition's
  pre-computed pred_probs, checked and cut to the train view (CPU).

Both then run the same tail: masks (CPU, the five confident-learning keep-masks) ->
Co-Teaching (GPU, one run per method, in parallel) -> condition results (CPU). One **report**
(CPU) collects the results of both loops (``dsl.Collected`` one level deep).

**Label errors only.** Co-Teaching is scored on the dataset's test split. A run whose dataset has
none (``coteach: auto``), or that sets ``coteach: off``, is built without it: the tail is masks ->
condition results (:func:`detection_results`), and the Co-Teaching parameters
(:data:`COTEACH_PARAMETERS`) are not pipeline parameters. Like the kinds of condition, this is
decided when the run is built (:func:`runs_coteach`), not by a ``dsl.If`` in the pipeline: no task
is built that would only fail or be skipped.

Why two loops and no ``dsl.If``/``dsl.OneOf``: a ``OneOf`` consumer picks the branch whose DAG
execution is COMPLETE or CACHED in ML Metadata (KFP 2.17.0 ``driver/resolve.go``
``GetProducerTask``), and only the launcher of a task that *ran* updates its DAG's state
(``component/launcher_v2.go`` -> ``metadata.UpdateDAGExecutionsState``); a cache hit is
published CACHED by the driver, which skips the launcher (``driver/container.go``). A branch
whose tasks all hit the cache -- any re-run with unchanged inputs -- stays RUNNING and the
consumer fails with "processing OneOf: No successful task found". Splitting the conditions by
kind before the pipeline starts leaves no consumer that reads a DAG's state, so a fully cached
re-run succeeds (``pipelines/README.md`` has the whole argument).

The kind of each condition is known when the run is prepared (whether it names pred_probs), so
:func:`pipeline_for` builds the loops of the kinds a run has and :func:`pipeline_arguments`
splits ``BenchmarkParams.conditions`` into the loops' parameters: no loop ever runs over an
empty list (kfp.local 2.17.3 fails on one; ``tests/e2e/test_kfp_local_branches.py``).
``clpipe compile`` builds both loops. Loop bodies take only sub-pipeline inputs and artifacts,
never an upstream *parameter* output, which kfp.local 2.17.3 replaces by the loop item
(``../shared/notes/kfp.md`` section 4).

**Preparing the dataset.** A user's images (an ImageFolder or a manifest) or a run that sets a
``resolution`` first need ``clpipe data prepare`` (:func:`needs_prepare`). Such a run's pipeline
starts with a ``prepare`` task (CPU placement on the GPU image,
``components/common/prepare_component.py``) whose returned URI is the dataset of every later
task; the loops and the report then sit in a sub-pipeline (``conditions-and-report``) that
takes that URI as its ``dataset`` input, so no loop body consumes an upstream parameter output.
A dataset already in the trainers' form (the CIFAR-10 ``.npz`` files, a prepared folder) at its
own size builds no prepare task and no extra level: the reproduction's pipeline is unchanged.
``clpipe compile --prepare`` builds the preparing variant.
"""

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence

from clpipe.components.combine_folds.component import combine_folds, given_pred_probs
from clpipe.components.common.datasets import ALL_ROWS, has_test_split, resolve_split_url
from clpipe.components.common.errors import InputError
from clpipe.components.common.kfp_component import TaskSettings, cpu_task, gpu_task, stage_component
from clpipe.components.common.prepare_component import prepare_dataset
from clpipe.components.coteach.component import coteach as coteach_component
from clpipe.components.fold_train.component import fold_train, plan_folds
from clpipe.components.make_masks.component import make_masks
from clpipe.components.noisy_labels.component import noisy_labels
from clpipe.components.report.component import condition_results, detection_results, report
from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Output

from .config import NATIVE_RESOLUTION, BenchmarkParams

PIPELINE_NAME = "clpipe-benchmark"
#: The two kinds of condition, each with its own loop (in this order in the compiled pipeline).
CROSS_VALIDATED, GIVEN_PRED_PROBS = KINDS = ("cross-validated", "given-pred-probs")
#: Pipeline parameter holding the conditions of each kind.
CONDITIONS_PARAMETER = {kind: f"{kind.replace('-', '_')}_conditions" for kind in KINDS}
#: Parameters only cross-validation uses.
FOLD_PARAMETERS = (
    "n_folds", "fold_arch", "fold_epochs", "fold_batch_size", "fold_seed", "fold_stratify_by", "fold_split",
)
#: Parameters only the prepare task uses (a pipeline without one does not have them).
PREPARE_PARAMETERS = ("resolution",)
#: Parameters only Co-Teaching uses (a pipeline that finds label errors only does not have them).
COTEACH_PARAMETERS = (
    "methods", "coteach_recipe", "coteach_epochs", "coteach_batch_size", "coteach_lr", "coteach_forget_rate",
    "coteach_cnn_width", "coteach_seed", "test_per_class",
)
#: Settings that choose what the pipeline is built with, never pipeline parameters themselves.
BUILD_SETTINGS = ("coteach",)

_REQUIRED = inspect.Parameter.empty


def _parameter_types() -> dict[str, type]:
    """KFP types of BenchmarkParams' fields: scalars as they are, tuples as lists."""
    hints = typing.get_type_hints(BenchmarkParams)
    types = {name: hint for name, hint in hints.items() if hint in (str, int, float) and name not in BUILD_SETTINGS}
    return {**types, "conditions": list[dict], "methods": list[str]}


PARAMETER_TYPES = _parameter_types()
#: Defaults of the pipeline parameters: those of BenchmarkParams (tuples as lists; conditions as items).
DEFAULT = {
    f.name: list(f.default) if isinstance(f.default, tuple) else f.default
    for f in dataclasses.fields(BenchmarkParams)
    if f.default is not dataclasses.MISSING
}
DEFAULT["conditions"] = [c.to_dict() for c in DEFAULT["conditions"]]


def kind_of(condition: Mapping) -> str:
    """A condition (as a run argument) is cross-validated unless it names pred_probs."""
    return GIVEN_PRED_PROBS if condition.get("pred_probs") else CROSS_VALIDATED


def kinds_of(params: BenchmarkParams) -> tuple[str, ...]:
    """The kinds of condition a run has, in :data:`KINDS` order."""
    present = {kind_of(c) for c in params.arguments()["conditions"]}
    return tuple(kind for kind in KINDS if kind in present)


def needs_prepare(params: BenchmarkParams) -> bool:
    """Whether the run starts with ``clpipe data prepare``: a resolution is set, or the train split is
    not yet in the form the trainers read (an ``.npz`` or shards; an ImageFolder or a manifest is not).

    A local dataset is looked at (a listing, no image is read). A remote one is judged by its URL
    alone: a manifest is prepared, a directory is not (the submitting machine may not reach the
    cluster's store, and the stages read an ImageFolder as it is, only decoding it in every task);
    a ``resolution`` prepares any dataset.
    """
    from clpipe.components.common import image_files, shards, storage

    if params.resolution != NATIVE_RESOLUTION or image_files.is_manifest(params.dataset):
        return True
    if params.dataset.endswith(".npz") or not storage.is_local(params.dataset):
        return False
    train = resolve_split_url(params.dataset, "train")
    return not (train.endswith(".npz") or shards.is_shards(train))


def runs_coteach(params: BenchmarkParams) -> bool:
    """Whether the run trains Co-Teaching: ``coteach`` ``on`` or ``off`` as set; ``auto``: when the
    dataset has a test split, which Co-Teaching is scored on.

    A local dataset is looked at (a listing: :func:`~clpipe.components.common.datasets.has_test_split`).
    A remote one is judged by its URL alone, as in :func:`needs_prepare` (the submitting machine may
    not reach the cluster's store): a single ``.npz`` or manifest is a train split alone, a folder is
    taken to have a test split; if it has none, the Co-Teaching tasks fail naming the missing split,
    and ``coteach: off`` finds the label errors alone.

    Raises:
        InputError: ``coteach`` is ``on`` and the dataset has no test split.
    """
    from clpipe.components.common import image_files, storage

    if params.coteach == "off":
        return False
    dataset = params.dataset
    if storage.is_local(dataset):
        test_split = has_test_split(dataset)
    else:
        test_split = not (dataset.endswith(".npz") or image_files.is_manifest(dataset))
    if params.coteach == "on" and not test_split:
        raise InputError("parameters", "coteach", f"'on', but the dataset {dataset} has no test split to score "
                         "Co-Teaching on (ROOT/test/<class>/..., or ROOT/*test.npz, *test.csv, *test.jsonl "
                         "beside the train split): add one, or set coteach to 'off' or 'auto' to find the "
                         "label errors only")
    return test_split


def pipeline_arguments(params: BenchmarkParams, prepare: bool | None = None, coteach: bool | None = None) -> dict:
    """The run arguments of :func:`pipeline_for` ``(params)``: the conditions split by kind, the
    prepare task's parameters when there is one (``prepare``; None = :func:`needs_prepare`) and
    Co-Teaching's when it runs (``coteach``; None = :func:`runs_coteach`)."""
    arguments = params.arguments()
    conditions = arguments.pop("conditions")
    for kind in kinds_of(params):
        arguments[CONDITIONS_PARAMETER[kind]] = [c for c in conditions if kind_of(c) == kind]
    dropped = list(BUILD_SETTINGS)
    if not (needs_prepare(params) if prepare is None else prepare):
        dropped += PREPARE_PARAMETERS
    if not (runs_coteach(params) if coteach is None else coteach):
        dropped += COTEACH_PARAMETERS
    for name in dropped:
        del arguments[name]
    return arguments


def pipeline_for(params: BenchmarkParams, settings: TaskSettings | None = None, prepare: bool | None = None,
                 coteach: bool | None = None):
    """The pipeline with the loops (and the prepare task, and Co-Teaching) the run of ``params`` needs
    (arguments: :func:`pipeline_arguments`; ``prepare``: None = :func:`needs_prepare`; ``coteach``:
    None = :func:`runs_coteach`)."""
    return build_pipeline(
        settings,
        kinds_of(params),
        needs_prepare(params) if prepare is None else prepare,
        runs_coteach(params) if coteach is None else coteach,
    )


def _pipeline(
    name: str,
    description: str,
    inputs: Mapping[str, tuple[type, object]],
    body: Callable,
    pipeline_root: str | None = None,
):
    """A KFP (sub-)pipeline whose parameters are ``inputs`` (name -> (type, default or _REQUIRED)).

    KFP reads a pipeline's parameters from its function signature; building the signature from
    BenchmarkParams keeps every parameter's name, type and default in one place. ``body``
    receives the parameters as keyword arguments and returns the pipeline's output artifact.
    """
    ordered = sorted(inputs.items(), key=lambda item: item[1][1] is not _REQUIRED)  # required ones first
    signature = inspect.Signature(
        [
            inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=t, default=d)
            for n, (t, d) in ordered
        ],
        return_annotation=Artifact,
    )

    def pipeline_function(*args):  # KFP calls it with the parameters in signature order
        return body(**dict(zip(signature.parameters, args)))

    pipeline_function.__signature__ = signature
    pipeline_function.__name__ = name.replace("-", "_")
    return dsl.pipeline(name=name, description=description, pipeline_root=pipeline_root)(pipeline_function)


@stage_component("cpu")
def report_of_both_kinds(
    cross_validated: Input[list[Artifact]],
    given_pred_probs: Input[list[Artifact]],
    report: Output[Artifact],
    html: Output[HTML],
    markdown: Output[Markdown],
    metrics: Output[Metrics],
):
    """The report stage's component over the results of both condition loops.

    A KFP input list comes from one loop, so a run with both kinds of condition hands the two
    lists to the report component's own function, concatenated.
    """
    from clpipe.components.report.component import report as report_stage

    report_stage.func(
        conditions=[*cross_validated, *given_pred_probs],
        report=report,
        html=html,
        markdown=markdown,
        metrics=metrics,
    )


def build_pipeline(
    settings: TaskSettings | None = None, kinds: Sequence[str] = KINDS, prepare: bool = False, coteach: bool = True
):
    """The pipeline function, its components built on the images of ``settings``, one loop per kind,
    with ``prepare`` a first task preparing the dataset, and without ``coteach`` no Co-Teaching
    (label errors only)."""
    settings = settings or TaskSettings()
    if not kinds or set(kinds) - set(KINDS):
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds!r}")
    kinds = [kind for kind in KINDS if kind in kinds]
    images = settings.images
    labels_op, given_op = noisy_labels.build(images), given_pred_probs.build(images)
    plan_op, fold_op, combine_op = (
        plan_folds.build(images),
        fold_train.build(images),
        combine_folds.build(images),
    )
    masks_op, coteach_op = make_masks.build(images), coteach_component.build(images)
    results_op = (condition_results if coteach else detection_results).build(images)

    def labels_task(p: Mapping):
        return cpu_task(labels_op(dataset=p["dataset"], condition=p["condition"]), settings, "noisy labels")

    def masks_coteach_results(p: Mapping, labels, pred_probs_uri, subset_per_class):
        """The tail both kinds share: masks -> Co-Teaching per method (unless label errors only) -> the
        condition's results.

        ``subset_per_class``: the rows the pred_probs describe (the cross-validated subset, or all).
        """
        masks = cpu_task(
            masks_op(
                pred_probs_uri=pred_probs_uri,
                compat=p["mask_compat"],
                dataset=p["dataset"],
                subset_per_class=subset_per_class,
                subset_seed=p["subset_seed"],
                issue_method=p["issue_method"],
            ),
            settings,
            "make masks",
        )
        inputs = {
            "dataset": p["dataset"],
            "subset_per_class": p["train_per_class"],
            "subset_seed": p["subset_seed"],
            "labels": labels,
            "pred_probs_uri": pred_probs_uri,
            "masks": masks.outputs["masks"],
        }
        if not coteach:
            return cpu_task(results_op(**inputs), settings, "condition results").outputs["result"]
        with dsl.ParallelFor(p["methods"], parallelism=settings.task_parallelism, name="methods") as method:
            run = gpu_task(
                coteach_op(
                    dataset=p["dataset"],
                    labels=labels,
                    masks=masks.outputs["masks"],
                    method=method,
                    recipe=p["coteach_recipe"],
                    epochs=p["coteach_epochs"],
                    batch_size=p["coteach_batch_size"],
                    lr=p["coteach_lr"],
                    forget_rate=p["coteach_forget_rate"],
                    cnn_width=p["coteach_cnn_width"],
                    seed=p["coteach_seed"],
                    subset_per_class=p["train_per_class"],
                    test_per_class=p["test_per_class"],
                    subset_seed=p["subset_seed"],
                ),
                settings,
                "co-teaching",
            )
        results = cpu_task(
            results_op(**inputs, runs=dsl.Collected(run.outputs["run"])), settings, "condition results"
        )
        return results.outputs["result"]

    def cross_validated_body(**p):
        labels = labels_task(p).outputs["labels"]
        plan = cpu_task(plan_op(n_folds=p["n_folds"]), settings, "plan folds")
        with dsl.ParallelFor(plan.output, parallelism=settings.task_parallelism, name="folds") as fold:
            trained = gpu_task(
                fold_op(
                    dataset=p["dataset"],
                    labels=labels,
                    fold=fold,
                    n_folds=p["n_folds"],
                    arch=p["fold_arch"],
                    epochs=p["fold_epochs"],
                    batch_size=p["fold_batch_size"],
                    seed=p["fold_seed"],
                    stratify_by=p["fold_stratify_by"],
                    fold_split=p["fold_split"],
                    subset_per_class=p["train_per_class"],
                    subset_seed=p["subset_seed"],
                ),
                settings,
                "fold-train",
            )
        combined = cpu_task(
            combine_op(folds=dsl.Collected(trained.outputs["fold_out"])), settings, "combine folds"
        )
        return masks_coteach_results(p, labels, combined.outputs["Output"], p["train_per_class"])

    def given_pred_probs_body(**p):
        labels = labels_task(p).outputs["labels"]
        given = cpu_task(
            given_op(
                dataset=p["dataset"],
                pred_probs_url=p["pred_probs"],
                # The whole split: label errors are found at full scale; Co-Teaching cuts its subset view
                # out of the whole-split masks.
                subset_per_class=ALL_ROWS,
                subset_seed=p["subset_seed"],
                labels=labels,
            ),
            settings,
            "given pred_probs",
        )
        return masks_coteach_results(p, labels, given.outputs["Output"], ALL_ROWS)

    # Per-condition sub-pipelines: every run parameter they use (no defaults) and the condition.
    without = () if coteach else COTEACH_PARAMETERS
    shared = {
        n: (t, _REQUIRED)
        for n, t in PARAMETER_TYPES.items()
        if n not in ("conditions", *FOLD_PARAMETERS, *PREPARE_PARAMETERS, *without)
    }
    condition_input = {"condition": (dict, _REQUIRED)}
    per_condition = {
        CROSS_VALIDATED: _pipeline(
            "cross-validated-condition",
            "One condition: labels, cross-validated pred_probs, masks, Co-Teaching.",
            {**shared, **condition_input, **{n: (PARAMETER_TYPES[n], _REQUIRED) for n in FOLD_PARAMETERS}},
            cross_validated_body,
        ),
        GIVEN_PRED_PROBS: _pipeline(
            "given-pred-probs-condition",
            "One condition: labels, its given pred_probs, masks, Co-Teaching.",
            {**shared, **condition_input, "pred_probs": (str, _REQUIRED)},
            given_pred_probs_body,
        ),
    }

    def benchmark_body(**p):
        collected = {}
        for kind in kinds:
            sub = per_condition[kind]
            with dsl.ParallelFor(
                p[CONDITIONS_PARAMETER[kind]],
                parallelism=settings.condition_parallelism,
                name=f"{kind}-conditions",
            ) as condition:
                extra = {"pred_probs": condition.pred_probs} if kind == GIVEN_PRED_PROBS else {}
                inputs = {n: p[n] for n in sub.component_spec.inputs if n in p}
                per_condition_task = sub(**{**inputs, "condition": condition, **extra})
            collected[kind] = dsl.Collected(per_condition_task.output)
        if len(collected) == 1:
            (conditions,) = collected.values()
            final = report.build(images)(conditions=conditions)
        else:
            final = report_of_both_kinds.build(images)(
                cross_validated=collected[CROSS_VALIDATED], given_pred_probs=collected[GIVEN_PRED_PROBS]
            )
        return cpu_task(final, settings, "report").outputs["report"]

    root_inputs = {
        n: (t, DEFAULT.get(n, _REQUIRED))
        for n, t in PARAMETER_TYPES.items()
        if n not in ("conditions", *PREPARE_PARAMETERS, *without)
    }
    for kind in kinds:
        default = [c for c in DEFAULT["conditions"] if kind_of(c) == kind]
        root_inputs[CONDITIONS_PARAMETER[kind]] = (list[dict], default or _REQUIRED)
    description = __doc__.splitlines()[0]
    if not prepare:
        return _pipeline(PIPELINE_NAME, description, root_inputs, benchmark_body, settings.pipeline_root)
    # The loops in a sub-pipeline whose `dataset` input is the prepare task's output (module docstring).
    conditions_and_report = _pipeline(
        "conditions-and-report",
        "Every condition's loop and the report, on the prepared dataset.",
        {n: (t, _REQUIRED) for n, (t, _) in root_inputs.items()},
        benchmark_body,
    )
    prepare_op = prepare_dataset.build(images)

    def prepared_body(**p):
        prepared = cpu_task(
            prepare_op(dataset=p["dataset"], resolution=p["resolution"]), settings, "prepare dataset"
        )
        inputs = {n: p[n] for n in conditions_and_report.component_spec.inputs}
        return conditions_and_report(**{**inputs, "dataset": prepared.outputs["Output"]}).output

    prepare_inputs = {n: (PARAMETER_TYPES[n], DEFAULT[n]) for n in PREPARE_PARAMETERS}
    return _pipeline(
        PIPELINE_NAME, description, {**root_inputs, **prepare_inputs}, prepared_body, settings.pipeline_root
    )
