"""KFP components of the report stage (CPU image): one condition's results, the whole report."""

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from ..common.kfp_component import stage_component


@stage_component("cpu")
def condition_results(
    dataset: str,
    subset_per_class: int,
    subset_seed: int,
    labels: Input[Dataset],
    pred_probs_uri: str,
    masks: Input[Dataset],
    runs: Input[list[Model]],
    result: Output[Artifact],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    gallery: Output[HTML],
    label_issues: Output[Dataset],
):
    """One condition's record (clpipe report condition), its metrics and out-of-sample confusion matrix,
    its review gallery and ranked label issues.

    The record scores the masks against the dataset's labels (label errors found, precision,
    recall); subset_per_class and subset_seed name the subset that cross-validation trained on.
    The confusion matrix is of the cross-validated (or given) predictions vs the given labels.
    gallery (HTML, self-contained) and label_issues (label_issues.csv) are copies of the record
    folder's review files.
    """
    import shutil

    from clpipe.components.common.artifacts import LabelIssues
    from clpipe.components.common.kfp_component import run_cli
    from clpipe.components.report import cli, logic
    from clpipe.components.report.gallery import GALLERY_FILE

    run_cli(
        cli.main,
        [
            "condition",
            "--labels",
            labels.path,
            "--pred-probs",
            pred_probs_uri,
            "--masks",
            masks.path,
            "--dataset",
            dataset,
            "--subset-per-class",
            subset_per_class,
            "--subset-seed",
            subset_seed,
            "--out",
            result.path,
            *[r.path for r in runs],
        ],
    )
    record = cli.read_condition(result.path)
    for name, value in logic.condition_metrics(record).items():
        metrics.log_metric(name, value)
    classes = record["pred_probs"].get("classes") or record["labels"]["classes"]
    confusion.log_confusion_matrix(classes, record["pred_probs"]["confusion_matrix"])
    shutil.copyfile(f"{result.path}/{GALLERY_FILE}", gallery.path)
    shutil.copyfile(f"{result.path}/{LabelIssues.FILE}", label_issues.path)


@stage_component("cpu")
def detection_results(
    dataset: str,
    subset_per_class: int,
    subset_seed: int,
    labels: Input[Dataset],
    pred_probs_uri: str,
    masks: Input[Dataset],
    result: Output[Artifact],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    gallery: Output[HTML],
    label_issues: Output[Dataset],
):
    """The report stage's condition-results component for a run that finds label errors only.

    A KFP list input comes from a loop, and this run has no Co-Teaching loop, so this calls the
    condition-results component's own function with no runs: the same record (which then says why
    no model was trained), metrics, confusion matrix, gallery and ranked label issues.
    """
    from clpipe.components.report.component import condition_results

    condition_results.func(
        dataset=dataset,
        subset_per_class=subset_per_class,
        subset_seed=subset_seed,
        labels=labels,
        pred_probs_uri=pred_probs_uri,
        masks=masks,
        runs=[],
        result=result,
        metrics=metrics,
        confusion=confusion,
        gallery=gallery,
        label_issues=label_issues,
    )


@stage_component("cpu")
def report(
    conditions: Input[list[Artifact]],
    report: Output[Artifact],
    html: Output[HTML],
    markdown: Output[Markdown],
    metrics: Output[Metrics],
):
    """The benchmark report over all conditions (clpipe report render): Table 2 layout, figures, CSV.

    html and markdown are the report for the KFP UI; report is the whole directory.
    """
    import shutil

    from clpipe.components.common.kfp_component import run_cli
    from clpipe.components.report import cli, logic

    run_cli(cli.main, ["render", "--out", report.path, *[c.path for c in conditions]])
    shutil.copyfile(f"{report.path}/report.html", html.path)
    shutil.copyfile(f"{report.path}/report.md", markdown.path)
    for name, value in logic.report_metrics([cli.read_condition(c.path) for c in conditions]).items():
        metrics.log_metric(name, value)
