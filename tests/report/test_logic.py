"""Condition records, the Table-2 layout with the paper's numbers, metrics for the KFP UI."""

import csv
import io

import numpy as np
import pytest
from clpipe.components.common.errors import InputError
from clpipe.components.report import logic

from .conftest import labels_summary, masks_summary, probs_summary, run_metrics, sources

#: The AVG column of the paper's Table 2 (../shared/notes/confident-learning.md section 6).
PAPER_AVG = {
    "argmax": 0.674,
    "cl_pbc": 0.697,
    "cl_both": 0.703,
    "cl_pbnr": 0.705,
    "conf_joint_only": 0.710,
    "none": 0.569,
}


@pytest.mark.parametrize("method", list(PAPER_AVG))
def test_paper_rows_average_to_the_papers_avg_column(method):
    row = logic.PAPER_TABLE2[method]
    assert len(row) == 12
    assert sum(row) / 12 == pytest.approx(PAPER_AVG[method], abs=0.0011)


@pytest.mark.parametrize(
    ("method", "noise", "sparsity", "expected"),
    [
        ("conf_joint_only", 0.2, 0.0, 0.896),
        ("cl_pbnr", 0.4, 0.6, 0.864),
        ("argmax", 0.6, 0.6, 0.337),
        ("none", 0.6, 0.0, 0.305),
        ("cl_both", 0.3, 0.0, None),
        ("cl_both", None, 0.0, None),
        ("custom", 0.2, 0.0, None),
    ],
)
def test_paper_accuracy_lookup(method, noise, sparsity, expected):
    assert logic.paper_accuracy(method, noise, sparsity) == expected


def test_noise_labels_name_the_70_percent_column():
    assert logic.noise_label(0.6, 0.699) == "70 %"
    assert logic.noise_label(0.3, 0.3) == "N=0.3"
    assert logic.noise_label(None, 0.412) == "41% (realised)"


def test_condition_result_orders_runs_and_keeps_sources(make_result):
    result = make_result(methods=("cl_pbnr", "none", "argmax"))
    assert list(result["runs"]) == ["argmax", "cl_pbnr", "none"]
    assert result["pred_probs"]["source"] == "cross-validation"
    assert result["sources"]["runs/0"] == "R0"


@pytest.mark.parametrize(
    ("runs", "masks", "message"),
    [
        ([run_metrics("argmax"), run_metrics("argmax")], masks_summary(), "trained twice"),
        ([run_metrics("cl_both")], masks_summary(), "has no mask"),
        ([run_metrics("argmax")], masks_summary(n=31), "31 rows"),
    ],
)
def test_condition_result_refuses_pieces_that_do_not_fit(runs, masks, message):
    with pytest.raises(InputError, match=message):
        logic.condition_result(
            labels_summary("a", 0.2, 0.0, 0.2), probs_summary(), masks, runs, sources=sources(len(runs))
        )


def test_missing_fields_are_named():
    broken = probs_summary()
    del broken["confusion_matrix"]
    with pytest.raises(InputError) as e:
        logic.condition_result(
            labels_summary("a", 0.2, 0.0, 0.2), broken, masks_summary(), [], sources=sources(0)
        )
    assert (e.value.source, e.value.field) == ("P", "confusion_matrix")


def test_table2_has_a_column_per_condition_and_paper_values_where_they_exist(make_result):
    results = [
        make_result("b", noise=0.6, sparsity=0.0),
        make_result("a", noise=0.2, sparsity=0.4),
        make_result("x", noise=0.3, sparsity=0.0),
    ]
    table = logic.table2_markdown(results).splitlines()
    assert table[0].startswith("| method | a<br>20 %, S 0.4 | x<br>N=0.3, S 0 | b<br>70 %, S 0 |")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table[2:]}
    assert rows["CL: C_confusion"] == ["0.500 (0.886)", "0.500", "0.500 (0.376)"]
    assert rows["Co-Teaching (no pruning)"][2] == "0.500 (0.305)"
    assert list(rows) == ["CL: C_confusion", "CL: PBNR", "Co-Teaching (no pruning)"]


def test_duplicate_condition_names_are_refused(make_result):
    with pytest.raises(InputError, match="more than once"):
        logic.sort_results([make_result("a"), make_result("a")])


def test_csv_rows(make_result):
    text = logic.results_csv(logic.result_rows([make_result("a", noise=0.4, sparsity=0.2)]))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["method"] for r in rows] == ["argmax", "cl_pbnr", "none"]
    argmax = rows[0]
    assert argmax["removed"] == "5" and argmax["kept"] == "25" and argmax["paper_test_acc"] == "0.825"
    assert rows[2]["removed"] == "0" and rows[2]["kept"] == "30"
    assert float(argmax["final_test_acc"]) == 0.5 and float(argmax["best_test_acc"]) == 0.5


def test_metrics_for_the_kfp_ui(make_result):
    result = make_result("a")
    metrics = logic.condition_metrics(result)
    assert metrics["argmax.final_test_acc"] == 0.5 and metrics["none.removed"] == 0.0
    assert metrics["realised_noise_rate"] == 0.39 and metrics["oos_accuracy"] == 0.7
    assert logic.report_metrics([result, make_result("b")])["b.cl_pbnr.final_test_acc"] == 0.5


def test_html_renders_tables_headings_and_inline_images(make_result):
    markdown = logic.report_markdown([make_result("a")], [("plots/x.png", "X")])
    page = logic.report_html(markdown, {"plots/x.png": "data:image/png;base64,AAAA"})
    assert page.count("<table>") == 6 and "<h1>" in page and 'src="data:image/png;base64,AAAA"' in page
    assert "a<br>40 %, S 0.2" in page


def test_difference_to_the_paper_per_cell(make_result):
    # noise 0.4, sparsity 0.2: the paper has argmax 0.825, PBNR 0.864, Co-Teaching 0.616; ours are 0.5
    text = logic.difference_markdown([make_result("a"), make_result("b", noise=0.3)])
    assert "| CL: C_confusion | -0.325 |" in text and "| CL: PBNR | -0.364 |" in text
    assert "b<br>" not in text  # 30 % noise is not a column of the paper
    assert "No condition of this run is one of the paper's columns" in logic.difference_markdown([make_result("c", noise=0.3)])


def test_cost_sums_task_time_per_stage_and_compares_with_the_seed(make_result):
    result = make_result("a")
    assert logic.stage_seconds(result) == {
        "cross-validation": (180.0, "NVIDIA H100"),
        "Co-Teaching": (180.0, "NVIDIA H100"),
    }
    text = logic.cost_markdown([result, make_result("b")])
    assert "| a | 180 | 180 | NVIDIA H100 |" in text
    assert "720 s = 0.20 device-hours (0.09% of the seed's about 230 GPU-hours" in text


def test_protocol_names_seeds_epochs_and_semantics(make_result):
    text = logic.protocol_markdown([make_result("a")])
    assert "2-fold airbench94, 10 epochs, batch 1024, stratified by given labels" in text
    assert "fast: 3 epochs trained of a 30-epoch schedule, batch 256, lr 0.0014, forget rate 0.2" in text
    assert "labels 0, folds 0, Co-Teaching 1" in text and "cleanlab-2.9" in text


def test_report_says_which_test_set(make_result):
    text = logic.report_markdown([make_result("a")], [])
    assert "30 images scored per network and epoch, of which 4 carry the official pixels" in text
    assert "### On the exact test images" in text


def _with_detection(make_result, name="a", methods=("none", "argmax", "cl_pbnr")):
    from clpipe.components.report import detection

    true = np.repeat(np.arange(3), 10)
    given = true.copy()
    given[:6] = (given[:6] + 1) % 3  # 6 real errors among 30 rows
    pbnr = np.ones(30, bool)
    pbnr[[0, 1, 2, 3, 10, 11, 20, 21]] = False  # removes 8: 4 real errors
    argmax = np.ones(30, bool)
    argmax[:6] = False  # removes exactly the 6 real errors
    masks = {"argmax": argmax, "conf_joint_only": argmax, "cl_pbnr": pbnr}
    found = detection.detection(given, true, masks, ["x", "y", "z"], source="M")
    result = make_result(name, methods=methods)
    return {**result, "detection": found}


def test_the_report_opens_with_what_was_found_in_words(make_result):
    text = logic.report_markdown([_with_detection(make_result)], [])
    head = text.split("## Label errors found")[0]
    assert "a (generated labels, 40 % noise, sparsity 0.2): 6 of the 30 given labels are wrong" in head
    assert "The 3 confident-learning methods removed 6 to 8 labels; 50% to 100% of the removed labels were real errors (precision)" in head
    assert "CL: PBNR, trained on below, removed 8: 4 real errors (precision 0.500, recall 0.667)" in head
    # runs of the fixture: every method ends at 0.5, so cleaning changed nothing here
    assert "Co-Teaching on the 25 rows CL: PBNR kept reached 0.500 test accuracy, against 0.500" in head
    assert "+0.0 points" in head and "the paper, training 250 epochs on all 50,000 images:" in head
    assert "| a | 30 (6 wrong) | CL: C_confusion | 6 | 6 | 1.000 | 1.000 |" in text
    assert "| x | 6 | 4 | 0.667 |" in text  # per class (dataset label), for the trained CL method


def test_detection_only_conditions_stay_out_of_the_accuracy_tables(make_result):
    results = [_with_detection(make_result, "a"), _with_detection(make_result, "b", methods=())]
    text = logic.report_markdown(results, [])
    assert "| b | 30 (6 wrong) |" in text
    table2 = text.split("## Test accuracy (Table 2 layout)")[1].split("###")[0]
    assert "a<br>" in table2 and "b<br>" not in table2


def test_html_is_rendered_by_a_markdown_library(make_result):
    page = logic.report_html(logic.report_markdown([_with_detection(make_result)], []), {})
    assert "<h3>Difference to the paper (ours - paper)</h3>" in page and "<p>###" not in page
    assert "<strong>Finding label errors</strong>" in page and "<li>" in page
    assert ">CL: C_{ỹ,y*}</td>" in page  # not taken for emphasis
