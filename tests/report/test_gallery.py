"""The review gallery: a self-contained page of the most likely label errors, from make-masks' review
output on scikit-learn's digits with injected errors (real images, known errors)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from clpipe.components.common import datasets
from clpipe.components.common.artifacts import LabelIssues
from clpipe.components.make_masks.cli import main as make_masks
from clpipe.components.report import gallery

from tests.your_data import digits_imagefolder


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    tmp = tmp_path_factory.mktemp("gallery")
    folder = digits_imagefolder(tmp / "digits", noise=0.08, seed=1)
    split = datasets.open_split(str(folder.root))
    x = split.images()[..., 0].reshape(len(split), -1) / 255.0
    probs = cross_val_predict(LogisticRegression(max_iter=2000), x, split.labels, cv=4, method="predict_proba")
    np.save(tmp / "labels.npy", split.labels)
    np.save(tmp / "probs.npy", probs.astype(np.float32))
    assert make_masks(["--labels", str(tmp / "labels.npy"), "--pred-probs", str(tmp / "probs.npy"),
                       "--dataset", str(folder.root), "--out", str(tmp / "masks")]) == 0
    url = gallery.write_gallery(str(tmp / "masks"), str(folder.root), str(tmp / "report"), top=24, per_class=6)
    return folder, split, tmp, url


def test_page_is_self_contained_and_shows_the_worst_first(review):
    _, split, tmp, url = review
    page = Path(url).read_text()
    assert 'src="http' not in page and "<script" not in page and "<link" not in page
    thumbs = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)
    overall = page.split('<section id="class-0">')[0]
    assert len(re.findall(r"<figure", overall)) == 24
    issues = LabelIssues.read(str(tmp / "masks"))
    first = issues.columns["file"][0].rsplit("/", 1)[-1]
    assert overall.index(first) < overall.index(issues.columns["file"][1].rsplit("/", 1)[-1])
    assert len(thumbs) == len(re.findall(r"<figure", page))
    for cls in split.classes:  # one section per class, named
        assert f"Given &ldquo;{cls}&rdquo;" in page


def test_cards_name_given_and_suggested_labels_and_score(review):
    _, _, tmp, url = review
    page = Path(url).read_text()
    issues = LabelIssues.read(str(tmp / "masks"))
    c = issues.columns
    card = page.split("<figure")[1]
    assert f'<span class="given">{c["given_label"][0]}</span>' in card
    assert f'<span class="suggested">{c["suggested_label"][0]}</span>' in card
    assert f'quality {gallery._score(c["label_quality"][0])}' in card
    flagged_by = [m for m in issues.methods if c[m][0]]
    assert f"flagged by {len(flagged_by)}/5 methods" in card
    flagged = int(c["is_label_issue"].sum())
    assert f"<b>{flagged:,}</b> of <b>{len(issues):,}</b> images" in page


def test_most_shown_cards_are_injected_errors(review):
    folder, split, _, url = review
    page = Path(url).read_text().split('<section id="class-0">')[0]
    shown = re.findall(r'<div class="file" title="([^"]+)"', page)
    injected = {str(split.files[list(split.names).index(n)]) for n in folder.flipped}
    assert sum(f in injected for f in shown) / len(shown) > 0.8


def test_small_images_are_enlarged_crisply_and_big_ones_shrunk():
    import base64
    import io

    from PIL import Image

    small = gallery.thumbnail_uri(np.zeros((8, 8, 3), np.uint8))
    big = gallery.thumbnail_uri(np.zeros((600, 300, 3), np.uint8))
    size = lambda uri: Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size
    assert size(small) == (8, 8)  # enlarged by the browser (image-rendering: pixelated), not resampled
    assert size(big) == (72, 144)


@pytest.mark.parametrize("fmt", ["npz", "shards"])
def test_thumbnails_fall_back_to_packed_pixels_when_the_originals_are_gone(review, tmp_path, fmt):
    import shutil

    from clpipe.components.common import prepare

    folder, _, tmp, _ = review
    copy = tmp_path / "copy"
    shutil.copytree(folder.root, copy)
    prepare.prepare(dataset=str(copy), out=str(tmp_path / "packed"), resolution=32, format=fmt)
    shutil.rmtree(copy)
    url = gallery.write_gallery(str(tmp / "masks"), str(tmp_path / "packed"), str(tmp_path / "report"), top=6,
                                per_class=1)
    page = Path(url).read_text()
    assert len(re.findall(r"<figure", page)) == len(re.findall(r'<img src="data:image/png', page)) >= 6
