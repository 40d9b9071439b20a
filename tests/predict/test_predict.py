"""clpipe predict: an exported model (safetensors + model.json) applied with the training preprocessing;
every bad input one ERROR line, exit 2, nothing written."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from clpipe.components.common.imaging import decode_image
from clpipe.components.common.model_files import ModelCard, load_model, write_model
from clpipe.components.common.networks import build_network, choose_architecture
from clpipe.components.predict.logic import normalise

from clpipe.cli import main as clpipe_main
from tests.your_data import mixed_imagefolder

CLASSES = ("cat", "dog", "emu")


def _card(**changes) -> ModelCard:
    base = {"architecture": "resnet18", "classes": CLASSES, "resolution": 40, "mean": (0.5, 0.4, 0.3),
            "std": (0.2, 0.25, 0.3), "trained": {"stage": "test"}}
    return ModelCard(**{**base, **changes})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    network = build_network("resnet18", len(CLASSES))
    path = tmp_path_factory.mktemp("model") / "model"
    write_model(str(path), network.state_dict(), _card())
    return path, network


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return mixed_imagefolder(tmp_path_factory.mktemp("imgs")) / "train"


def _predict(args, capsys) -> list[dict]:
    assert clpipe_main(["predict", *args]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_export_round_trip_is_exact(model_dir):
    path, network = model_dir
    loaded, card = load_model(str(path))
    assert card == _card()
    for name, tensor in network.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert json.loads((path / "model.json").read_text())["format"] == "clpipe-model/1"


def test_predict_applies_the_training_preprocessing(model_dir, images, capsys):
    path, network = model_dir
    rows = _predict(["--model", str(path), "--top-k", "3", "--batch-size", "5", str(images)], capsys)
    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    assert [r["file"] for r in rows] == [str(p) for p in files]
    pixels = np.stack([decode_image(p.read_bytes(), str(p), 40) for p in files])
    with torch.no_grad():
        expected = torch.softmax(network.eval()(normalise(pixels, _card())), dim=1).numpy()
    for row, probs in zip(rows, expected):
        assert row["predicted_label"] == CLASSES[int(probs.argmax())]
        assert float(row["probability"]) == pytest.approx(float(probs.max()), rel=1e-4)
        assert {row["predicted_label"], row["label_2"], row["label_3"]} == set(CLASSES)


def test_class_names_follow_the_output_index(tmp_path, images, capsys):
    network = build_network("resnet18", 3)
    with torch.no_grad():
        network.fc.weight.zero_()
        network.fc.bias.copy_(torch.tensor([0.0, 0.0, 20.0]))  # output 2 always wins
    write_model(str(tmp_path / "m"), network.state_dict(), _card())
    out = tmp_path / "p.csv"
    assert clpipe_main(["predict", "--model", str(tmp_path / "m"), "--out", str(out), str(images / "cat" / "a.jpg")]) == 0
    row = next(csv.DictReader(out.open()))
    assert row["predicted_label"] == "emu" and float(row["probability"]) > 0.999


def test_architecture_by_resolution():
    assert [choose_architecture(r) for r in (32, 64, 96, 127, 128, 224)] == [
        "airbench94", "resnet18", "resnet18", "resnet18", "resnet50", "resnet50"]


def _bad_models(tmp, good):
    (tmp / "nocard").mkdir()
    (tmp / "nocard" / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    (tmp / "oldformat").mkdir()
    card = json.loads((good / "model.json").read_text())
    (tmp / "oldformat" / "model.json").write_text(json.dumps({**card, "format": "other/0"}))
    write_model(str(tmp / "twoclasses"), build_network("resnet18", 2).state_dict(), _card())
    (tmp / "notweights").mkdir()
    (tmp / "notweights" / "model.json").write_text((good / "model.json").read_text())
    (tmp / "notweights" / "model.safetensors").write_bytes(b"\x00" * 20)
    (tmp / "empty").mkdir()
    (tmp / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return tmp


@pytest.mark.parametrize("case, message", [
    ("nocard", "model.json: file not found"),
    ("oldformat", "model.json: format: expected 'clpipe-model/1'"),
    ("twoclasses", "the weights do not fit resnet18 with 3 classes"),
    ("notweights", "model.safetensors: not a safetensors file"),
    ("empty images", "no image files"),
    ("broken image", "broken.png: not a readable image"),
    ("top-k", "--top-k: must lie in [1, 3], got 4"),
])
def test_bad_inputs_one_error_line(case, message, model_dir, images, tmp_path, capsys):
    good, _ = model_dir
    bad = _bad_models(tmp_path / "bad", good) if (tmp_path / "bad").mkdir() is None else None
    model = str(bad / case) if (bad / case).exists() else str(good)
    image = {"empty images": str(bad / "empty"), "broken image": str(bad / "broken.png")}.get(case, str(images))
    extra = ["--top-k", "4"] if case == "top-k" else []
    out = tmp_path / "predictions.csv"
    assert clpipe_main(["predict", "--model", model, "--out", str(out), *extra, image]) == 2
    assert not out.exists()
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and errors[0].startswith("ERROR predict: ") and message in errors[0], errors
