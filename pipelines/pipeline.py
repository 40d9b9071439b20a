"""The clpipe benchmark as one Kubeflow Pipelines v2 pipeline.

Steps (one sub-pipeline ``benchmark-condition`` per condition, all conditions in parallel):

1. **noisy labels** (CPU): the condition's given labels, generated or validated.
2. **pred_probs**, one of two branches (``dsl.If`` / ``dsl.Else`` on the condition's
   ``pred_probs`` URL):
   - *given pred_probs* (CPU): the pre-computed ones, checked and cut to the train view;
   - *cross-validation*: plan the folds (CPU), train every fold (GPU, in parallel), combine
     them (CPU, ``dsl.Collected``).
3. **masks** (CPU): the five confident-learning keep-masks from whichever branch ran.
4. **Co-Teaching** (GPU): one run per method, in parallel.
5. **condition results** (CPU): the condition's record, metrics and confusion matrix.

Then one **report** (CPU) over all conditions (``dsl.Collected`` one level deep).

Why the branches meet through a *parameter*: both branch tasks return their output's URI and
the mask generator reads ``dsl.OneOf`` of those strings with fsspec. ``dsl.OneOf`` of
*artifacts* does not run under ``kfp.local`` 2.17.3 ("Expected 1 artifact in
ArtifactSelectorSpec. Got: 2") and fails on the KFP 2.16 backend (kubeflow/pipelines#13436),
while ``dsl.OneOf`` of parameters runs locally (tests/e2e) -- so the same definition runs
on a cluster and on one machine. Loop bodies take only sub-pipeline inputs and artifacts,
never an upstream *parameter* output, which kfp.local 2.17.3 replaces by the loop item
(``../shared/notes/kfp.md`` section 4).
"""

import dataclasses

from clpipe.components.common.kfp_component import TaskSettings, cpu_task, gpu_task
from clpipe.components.coteach.component import coteach
from clpipe.components.combine_folds.component import combine_folds, given_pred_probs
from clpipe.components.fold_train.component import fold_train, plan_folds
from clpipe.components.make_masks.component import make_masks
from clpipe.components.noisy_labels.component import noisy_labels
from clpipe.components.report.component import condition_results, report
from kfp import dsl
from kfp.dsl import Artifact

from .config import BenchmarkParams

PIPELINE_NAME = "clpipe-benchmark"
#: Defaults of the pipeline parameters: those of BenchmarkParams.
DEFAULT = {f.name: f.default for f in dataclasses.fields(BenchmarkParams)}
DEFAULT_CONDITIONS = [c.to_dict() for c in DEFAULT["conditions"]]
DEFAULT_METHODS = list(DEFAULT["methods"])


def build_pipeline(settings: TaskSettings | None = None):
    """The pipeline function, its components built on the images of ``settings``."""
    settings = settings or TaskSettings()
    images = settings.images
    labels_op, given_op = noisy_labels.build(images), given_pred_probs.build(images)
    plan_op, fold_op, combine_op = (
        plan_folds.build(images),
        fold_train.build(images),
        combine_folds.build(images),
    )
    masks_op, coteach_op = make_masks.build(images), coteach.build(images)
    results_op, report_op = condition_results.build(images), report.build(images)

    @dsl.pipeline(
        name="benchmark-condition", description="One condition: labels, pred_probs, masks, Co-Teaching."
    )
    def benchmark_condition(
        dataset: str,
        condition: dict,
        pred_probs: str,
        n_folds: int,
        fold_arch: str,
        fold_epochs: int,
        fold_batch_size: int,
        fold_seed: int,
        fold_stratify_by: str,
        fold_split: str,
        methods: list[str],
        mask_compat: str,
        coteach_recipe: str,
        coteach_epochs: int,
        coteach_batch_size: int,
        coteach_lr: float,
        coteach_forget_rate: str,
        coteach_cnn_width: int,
        coteach_seed: int,
        train_per_class: int,
        test_per_class: int,
        subset_seed: int,
    ) -> Artifact:
        labels = cpu_task(labels_op(dataset=dataset, condition=condition), settings, "noisy labels")
        labels_art = labels.outputs["labels"]
        with dsl.If(pred_probs != "", name="given-pred-probs"):
            given = cpu_task(
                given_op(
                    dataset=dataset,
                    pred_probs_url=pred_probs,
                    subset_per_class=train_per_class,
                    subset_seed=subset_seed,
                    labels=labels_art,
                ),
                settings,
                "given pred_probs",
            )
        with dsl.Else(name="cross-validation"):
            plan = cpu_task(plan_op(n_folds=n_folds), settings, "plan folds")
            with dsl.ParallelFor(plan.output, name="folds") as fold:
                trained = gpu_task(
                    fold_op(
                        dataset=dataset,
                        labels=labels_art,
                        fold=fold,
                        n_folds=n_folds,
                        arch=fold_arch,
                        epochs=fold_epochs,
                        batch_size=fold_batch_size,
                        seed=fold_seed,
                        stratify_by=fold_stratify_by,
                        fold_split=fold_split,
                        subset_per_class=train_per_class,
                        subset_seed=subset_seed,
                    ),
                    settings,
                    "fold-train",
                )
            combined = cpu_task(
                combine_op(folds=dsl.Collected(trained.outputs["fold_out"])), settings, "combine folds"
            )
        probs_uri = dsl.OneOf(given.outputs["Output"], combined.outputs["Output"])
        masks = cpu_task(masks_op(pred_probs_uri=probs_uri, compat=mask_compat), settings, "make masks")
        with dsl.ParallelFor(methods, name="methods") as method:
            run = gpu_task(
                coteach_op(
                    dataset=dataset,
                    labels=labels_art,
                    masks=masks.outputs["masks"],
                    method=method,
                    recipe=coteach_recipe,
                    epochs=coteach_epochs,
                    batch_size=coteach_batch_size,
                    lr=coteach_lr,
                    forget_rate=coteach_forget_rate,
                    cnn_width=coteach_cnn_width,
                    seed=coteach_seed,
                    subset_per_class=train_per_class,
                    test_per_class=test_per_class,
                    subset_seed=subset_seed,
                ),
                settings,
                "co-teaching",
            )
        results = cpu_task(
            results_op(
                labels=labels_art,
                pred_probs_uri=probs_uri,
                masks=masks.outputs["masks"],
                runs=dsl.Collected(run.outputs["run"]),
            ),
            settings,
            "condition results",
        )
        return results.outputs["result"]

    @dsl.pipeline(name=PIPELINE_NAME, description=__doc__.splitlines()[0])
    def benchmark(
        dataset: str,
        conditions: list[dict] = DEFAULT_CONDITIONS,
        n_folds: int = DEFAULT["n_folds"],
        fold_arch: str = DEFAULT["fold_arch"],
        fold_epochs: int = DEFAULT["fold_epochs"],
        fold_batch_size: int = DEFAULT["fold_batch_size"],
        fold_seed: int = DEFAULT["fold_seed"],
        fold_stratify_by: str = DEFAULT["fold_stratify_by"],
        fold_split: str = DEFAULT["fold_split"],
        methods: list[str] = DEFAULT_METHODS,
        mask_compat: str = DEFAULT["mask_compat"],
        coteach_recipe: str = DEFAULT["coteach_recipe"],
        coteach_epochs: int = DEFAULT["coteach_epochs"],
        coteach_batch_size: int = DEFAULT["coteach_batch_size"],
        coteach_lr: float = DEFAULT["coteach_lr"],
        coteach_forget_rate: str = DEFAULT["coteach_forget_rate"],
        coteach_cnn_width: int = DEFAULT["coteach_cnn_width"],
        coteach_seed: int = DEFAULT["coteach_seed"],
        train_per_class: int = DEFAULT["train_per_class"],
        test_per_class: int = DEFAULT["test_per_class"],
        subset_seed: int = DEFAULT["subset_seed"],
    ) -> Artifact:
        # Every parameter but the condition list goes to each condition's sub-pipeline as it is.
        given = locals()
        shared = {name: given[name] for name in DEFAULT if name != "conditions"}
        with dsl.ParallelFor(conditions, name="conditions") as condition:
            per_condition = benchmark_condition(
                condition=condition, pred_probs=condition.pred_probs, **shared
            )
        final = cpu_task(report_op(conditions=dsl.Collected(per_condition.output)), settings, "report")
        return final.outputs["report"]

    return benchmark
