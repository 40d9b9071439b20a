"""``clpipe run pipelines/configs/your-data.yaml`` -- the pipeline definition of the CIFAR-10 reproduction -- on
each kind of dataset issue 11 names besides the digits run of ``test_your_data_run.py``, made of real scans
(scikit-learn's digits; nobody here made them), in three runs:

- **mixed**: an ImageFolder of JPEGs and PNGs of six sizes, grayscale and RGB (``MIXED_DIGIT_FORMS``), 10
  classes, with a test split: Co-Teaching, and the exported model applied to the mixed test files;
- **store**: 2 classes (the digits 0 and 1) as a CSV (train) and a JSONL (test) manifest on the loopback
  SeaweedFS, integer labels named by a ``classes.txt`` beside them, image paths relative to the manifests, the
  images (mixed forms too) on the store: Co-Teaching, and the model applied to the test images' ``s3://`` URLs;
- **hundred**: 100 classes (two-digit numbers ``00`` .. ``99``, each image two real scans side by side) in an
  ImageFolder with ``train/`` alone, packed as litdata shards first (``clpipe data prepare --format shards``, the
  form of a dataset larger than memory: the fold trainers stream it): label errors only (``coteach: auto``), no
  model, and the report says why.

Kinds are combined (2 classes + object store, 100 classes + train only) to keep the runs few: a run's time is
mostly the start-up of its tasks, which kfp.local pays once per task (a Python subprocess importing clpipe,
torch and sklearn), not the few hundred images. Co-Teaching with 100 classes is checked at the stage
(``tests/coteach/test_your_data.py``).

Each run checks what the person who ran it gets: ``label_issues.csv`` with every train image once and its class
name, the gallery page, ``cleaned_labels.json``, ``issues_per_class.csv`` and ``noise_matrix.csv``; with a test
split also the Co-Teaching result in the report and the exported model that ``clpipe run`` names, applied by
``clpipe predict`` to the test images as the user has them, which must give the probabilities the network gives
the prepared test pixels the run scored (the run's own test accuracy adds mirror test-time augmentation, which
the exported model leaves out, ``components/coteach/export.py``). Times: ``docs/your-data.md``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from clpipe import cli as clpipe_cli
from tests.object_stores import seaweed
from tests.your_data import (
    DIGIT_NAMES,
    MIXED_DIGIT_FORMS,
    digit_pairs_imagefolder,
    digits_imagefolder,
    write_manifest,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "pipelines" / "configs" / "your-data.yaml"
#: The smallest recipes that still train and rank something: 2 folds of airbench-tiny for 2 epochs, 2
#: Co-Teaching epochs of a 4-channel CNN on the labels CL: PBNR keeps, batches that small sets fill.
RECIPE = [
    "--resolution", "32", "--n-folds", "2", "--fold-arch", "airbench-tiny", "--fold-epochs", "2",
    "--fold-batch-size", "64", "--methods", "cl_pbnr", "--coteach-epochs", "2", "--coteach-batch-size", "16",
    "--coteach-cnn-width", "4",
]
REVIEW = Path("report") / "review-as-given"
MODEL_LINE = re.compile(r"^trained model \(as-given, (\w+)\): (\S+) \(clpipe predict", re.MULTILINE)


@dataclass(frozen=True)
class YourRun:
    """One ``clpipe run`` and what it was given.

    Attributes:
        out: The run's ``--output``.
        printed: What ``clpipe run`` printed.
        train: Every train image (path or URL) -> its given class name.
        test: Every test image -> its class name (empty without a test split).
        classes: The class names.
    """

    out: Path
    printed: str
    train: dict[str, str]
    test: dict[str, str]
    classes: tuple[str, ...]

    def read(self, name: str) -> str:
        return (self.out / REVIEW / name).read_text()

    def issues(self) -> list[dict]:
        return list(csv.DictReader(io.StringIO(self.read("label_issues.csv"))))

    def record(self) -> dict:
        (record,) = json.loads((self.out / "report" / "results.json").read_text())
        return record


def run_pipeline(dataset: str, out: Path, *extra: str) -> str:
    """``clpipe run`` of the your-data config on ``dataset`` with :data:`RECIPE`; returns what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = clpipe_cli.main(["run", str(CONFIG), "--dataset", dataset, *RECIPE, *extra, "--output", str(out)])
    assert code == 0, printed.getvalue()
    return printed.getvalue()


def files_of(root: Path, split: str) -> dict[str, str]:
    """Every image file of an ImageFolder split -> its class (the folder)."""
    return {str(p): p.parent.name for p in sorted((root / split).glob("*/*")) if p.is_file()}


# --- the datasets and their runs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[YourRun, Prediction]:
    tmp = tmp_path_factory.mktemp("mixed")
    root = digits_imagefolder(tmp / "digits", noise=0.0, per_class=18, test_per_class=6, forms=MIXED_DIGIT_FORMS).root
    run = YourRun(tmp / "run", run_pipeline(str(root), tmp / "run"), files_of(root, "train"), files_of(root, "test"),
                  DIGIT_NAMES)
    return run, predict(run, str(root / "test"), tmp / "predicted.csv")


BUCKET, KEY, SECRET = "clpipe-your-data-e2e", "e2e-key", "e2e-secret"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[YourRun, Prediction]:
    """The digits 0 and 1 on the store as s3://BUCKET/images/{train,test}/<digit>/<file>, listed by
    lists/digits-train.csv and lists/digits-test.jsonl (paths relative to them, integer labels that
    lists/classes.txt names); the dataset is the folder s3://BUCKET/lists."""
    import s3fs

    tmp = tmp_path_factory.mktemp("store")
    names = DIGIT_NAMES[:2]
    local = digits_imagefolder(tmp / "digits", noise=0.0, classes=2, per_class=30, test_per_class=8,
                               forms=MIXED_DIGIT_FORMS).root
    with seaweed(BUCKET, KEY, SECRET) as server, pytest.MonkeyPatch.context() as env:
        for name, value in server.env().items():  # the tasks (subprocesses) inherit them
            env.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()
        fs = server.fs()
        fs.pipe_file(f"{BUCKET}/lists/classes.txt", "".join(f"{name}\n" for name in names).encode())
        splits = {}
        for split, manifest in (("train", "digits-train.csv"), ("test", "digits-test.jsonl")):
            rows = []
            for path, cls in files_of(local, split).items():
                key = f"images/{split}/{cls}/{Path(path).name}"
                fs.pipe_file(f"{BUCKET}/{key}", Path(path).read_bytes())
                rows.append((key, names.index(cls)))
            fs.pipe_file(f"{BUCKET}/lists/{manifest}", write_manifest(tmp / manifest, [
                (f"../{key}", label) for key, label in rows]).read_bytes())
            splits[split] = {f"s3://{BUCKET}/{key}": names[label] for key, label in rows}
        run = YourRun(tmp / "run", run_pipeline(f"s3://{BUCKET}/lists", tmp / "run"), splits["train"],
                      splits["test"], names)
        predicted = predict(run, f"s3://{BUCKET}/images/test", tmp / "predicted.csv")  # while the store is up
    s3fs.S3FileSystem.clear_instance_cache()
    return run, predicted


@pytest.fixture(scope="module")
def hundred(tmp_path_factory) -> YourRun:
    tmp = tmp_path_factory.mktemp("hundred")
    root = digit_pairs_imagefolder(tmp / "pairs", per_class=6)
    classes = tuple(f"{a}{b}" for a in range(10) for b in range(10))
    packed = tmp / "packed"  # packed as shards, the form of a dataset larger than memory, which the trainers stream
    assert clpipe_cli.main(["data", "prepare", "--dataset", str(root), "--out", str(packed), "--resolution", "32",
                            "--format", "shards"]) == 0
    printed = run_pipeline(str(packed), tmp / "run", "--resolution", "0")  # already at its training resolution
    return YourRun(tmp / "run", printed, files_of(root, "train"), {}, classes)


# --- what every run hands back -------------------------------------------------------------------------


def check_label_review(run: YourRun) -> None:
    """label_issues.csv, the gallery, cleaned_labels.json, issues_per_class.csv and noise_matrix.csv."""
    rows = run.issues()
    assert {r["file"]: r["given_label"] for r in rows} == run.train and len(rows) == len(run.train)
    assert {r["suggested_label"] for r in rows} <= set(run.classes)
    quality = [float(r["label_quality"]) for r in rows]
    assert quality == sorted(quality) and 0 <= quality[0] and quality[-1] <= 1  # worst first
    page = run.read("gallery.html")
    shown = re.findall(r'<img src="data:image/png;base64,[^"]+" alt="([^"]+)"', page)
    top = min(48, len(rows))
    assert shown[:top] == [r["file"] for r in rows[:top]]  # the worst, in rank order, with their thumbnails
    assert all(f"Given &ldquo;{cls}&rdquo;" in page for cls in run.classes)  # a section per class name
    kept = [r for r in rows if r["is_label_issue"] == "0"]
    cleaned = json.loads(run.read("cleaned_labels.json"))
    given = sorted(r["given_label"] for r in kept)
    assert sorted(sorted(run.classes)[k] for k in cleaned.values()) == given  # the unflagged rows, their labels
    per_class = list(csv.DictReader(io.StringIO(run.read("issues_per_class.csv"))))
    assert [(r["class"], int(r["given"])) for r in per_class] == [
        (cls, sum(c == cls for c in run.train.values())) for cls in sorted(run.classes)]
    noise = list(csv.reader(io.StringIO(run.read("noise_matrix.csv"))))
    assert noise[0] == ["given \\ true", *sorted(run.classes)] and [r[0] for r in noise[1:]] == sorted(run.classes)
    for j in range(len(run.classes)):  # P(given | true): each column a distribution, to the 4 decimals written
        assert sum(float(r[1 + j]) for r in noise[1:]) == pytest.approx(1, abs=5e-5 * len(run.classes))
    report = (run.out / "report" / "report.md").read_text()
    assert "[gallery.html](review-as-given/gallery.html)" in report
    assert f"{sum(r['is_label_issue'] == '1' for r in rows):,} of {len(rows):,} images flagged" in report


@dataclass(frozen=True)
class Prediction:
    """``clpipe predict`` with the model a run exported, on its test images as the user has them.

    Attributes:
        method: The Co-Teaching run that exported the model (``clpipe run`` names it).
        rows: The CSV rows (``file``, ``predicted_label``, ``probability``).
        expected: test file -> the probability of its top class under the same network given the prepared
            test pixels the run scored.
    """

    method: str
    rows: list[dict]
    expected: dict[str, float]


def predict(run: YourRun, images: str, out: Path) -> Prediction:
    """``clpipe predict`` with the model ``clpipe run`` named on ``images`` (a folder or URL), and what the
    network gives the prepared test split's pixels."""
    from clpipe.components.common.datasets import open_split
    from clpipe.components.common.model_files import load_model
    from clpipe.components.predict.logic import predict_proba

    ((method, model),) = MODEL_LINE.findall(run.printed)
    card = json.loads((Path(model) / "model.json").read_text())
    assert card["classes"] == sorted(run.classes) and card["resolution"] == 32
    assert clpipe_cli.main(["predict", "--model", model, images, "--out", str(out)]) == 0
    (prepared,) = (run.out / "kfp").glob("*/prepare-dataset/prepared")
    test = open_split(str(prepared), "test")
    network, card = load_model(model)
    probs = predict_proba(network, card, test.images(), batch_size=256, device="cpu")
    expected = dict(zip(test.files, probs.max(axis=1).tolist()))
    return Prediction(method, list(csv.DictReader(io.StringIO(out.read_text()))), expected)


def check_model(run: YourRun, predicted: Prediction) -> None:
    """The Co-Teaching result in the report, and the exported model's predictions for every test image."""
    ((method, run_metrics),) = run.record()["runs"].items()
    assert run_metrics["n_test"] == len(run.test) and run_metrics["complete"]
    assert 0 <= run_metrics["final"]["test_acc"] <= 1
    report = (run.out / "report" / "report.md").read_text()
    assert "## Test accuracy (Table 2 layout)" in report and "No model was trained" not in report
    assert predicted.method == method
    assert sorted(r["file"] for r in predicted.rows) == sorted(run.test) == sorted(predicted.expected)
    assert {r["predicted_label"] for r in predicted.rows} <= set(run.classes)
    for row in predicted.rows:  # the user's files, decoded by predict, are the pixels the run trained and scored
        assert float(row["probability"]) == pytest.approx(predicted.expected[row["file"]], rel=1e-5)


# --- the tests ------------------------------------------------------------------------------------------


def test_mixed_sizes_formats_and_modes(mixed):
    run, predicted = mixed
    assert {Path(f).suffix for f in run.train} == {".png", ".jpg"}
    check_label_review(run)
    check_model(run, predicted)


def test_two_classes_as_manifests_on_an_object_store(store):
    run, predicted = store
    assert set(run.train.values()) == {"zero", "one"}
    assert all(f.startswith(f"s3://{BUCKET}/images/train/") for f in run.train)
    check_label_review(run)
    check_model(run, predicted)


def test_a_hundred_classes_without_a_test_split_find_label_errors_and_say_why_no_model_was_trained(hundred):
    assert len(set(hundred.train.values())) == 100
    check_label_review(hundred)
    record = hundred.record()
    assert record["runs"] == {} and record["no_model"] == "no-test-split"
    report = (hundred.out / "report" / "report.md").read_text()
    assert report.startswith("# clpipe results: confident learning (label errors only) on pairs")
    assert ("- as-given: the dataset has no test split, which Co-Teaching is scored on, so this run found the label "
            "errors only. [review-as-given/cleaned_labels.json](review-as-given/cleaned_labels.json)") in report
    assert "Test accuracy" not in report and not list((hundred.out / "kfp").rglob("coteach"))
    assert "trained model" not in hundred.printed and "No model was trained" in hundred.printed
    assert list((hundred.out / "kfp").rglob("detection-results/gallery"))  # the KFP HTML artifact
    folds = [json.loads(p.read_text()) for p in (hundred.out / "kfp").rglob("fold-train/fold_out/metrics.json")]
    assert len(folds) == 2 and all(m["streamed"] for m in folds)  # the folds trained from the shards
