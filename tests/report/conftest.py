"""Stage summaries in the shapes the stages write them (docs/architecture.md), made small."""

import pytest

K = 3


def labels_summary(name, noise, sparsity, rate):
    return {
        "stage": "noisy-labels",
        "condition": {
            "name": name,
            "noise": noise,
            "sparsity": sparsity,
            "seed": 0,
            "labels": "",
            "pred_probs": "",
        },
        "generated": True,
        "trace": 2,
        "realised_noise_rate": rate,
        "n_examples": 60,
        "n_classes": K,
        "noise_matrix": [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]],
        "realised_noise_matrix": [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]],
        "forget_rate_from_noise": 0.1,
    }


def probs_summary(n=30):
    return {
        "stage": "combine-folds",
        "n_examples": n,
        "n_classes": K,
        "accuracy": 0.7,
        "n_folds": 2,
        "confusion_matrix": [[8, 1, 1], [1, 7, 2], [2, 2, 6]],
        "classes": ["a", "b", "c"],
        "training": {"arch": "airbench94", "epochs": 10, "batch_size": 1024, "seed": 0, "stratify_by": "given"},
        "folds": [
            {"fold": 0, "total_time_s": 100.0, "device": "NVIDIA H100"},
            {"fold": 1, "total_time_s": 80.0, "device": "NVIDIA H100"},
        ],
    }


def masks_summary(n=30, methods=("argmax", "cl_pbnr")):
    return {
        "n_examples": n,
        "n_classes": K,
        "semantics": "cleanlab-2.9",
        "methods": {
            m: {"paper_name": m, "removed": 5 + i, "kept": n - 5 - i, "removed_per_class": [2, 2, 1 + i]}
            for i, m in enumerate(methods)
        },
    }


def run_metrics(method, accs=(0.3, 0.4, 0.5)):
    curves = {
        "epoch": list(range(1, len(accs) + 1)),
        "test_acc_1": list(accs),
        "test_acc_2": [a - 0.05 for a in accs],
    }
    return {
        "stage": "coteach",
        "method": method,
        "epochs_done": len(accs),
        "n_train": 25,
        "n_test": 30,
        "n_test_exact": 4,
        "time_s": 60.0,
        "device": "NVIDIA H100",
        "seed": 1,
        "recipe": "fast",
        "epochs": 30,
        "recipe_params": {"batch_size": 256, "lr": 0.0014, "forget_rate": 0.2},
        "class_weight_rule": "feb2020",
        "curves": curves,
        "final": {"test_acc": accs[-1], "test_exact_acc": None, "epoch": len(accs)},
        "best": {"test_acc": max(accs), "epoch": len(accs), "net": 1},
    }


def sources(n_runs):
    return {"labels": "L", "pred_probs": "P", "masks": "M", **{f"runs/{i}": f"R{i}" for i in range(n_runs)}}


@pytest.fixture
def make_result():
    from clpipe.components.report import logic

    def make(name="a", noise=0.4, sparsity=0.2, methods=("none", "argmax", "cl_pbnr")):
        runs = [run_metrics(m) for m in methods]
        return logic.condition_result(
            labels_summary(name, noise, sparsity, 0.39),
            probs_summary(),
            masks_summary(),
            runs,
            sources=sources(len(runs)),
            no_model=None if runs else logic.NOT_RUN,
        )

    return make
