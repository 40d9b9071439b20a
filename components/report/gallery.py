"""The review gallery: one self-contained HTML page of the most likely label errors, with thumbnails.

Built from make-masks' ``label_issues.csv`` (:class:`~..common.artifacts.LabelIssues`) and the
dataset the rows belong to. One card per image: the thumbnail, its file, the given label
(struck through) and the suggested one, cleanlab's label quality score and the methods that
flag it. Sections: the overall worst ``top`` rows, then per given class its worst flagged rows
(``per_class``), with a table of contents and per-class counts. Thumbnails are embedded as
``data:`` URIs and the CSS is inline, so the page opens anywhere (a KFP HTML artifact, an
e-mail attachment) without the dataset. Small images (digits, CIFAR) are enlarged by whole
pixels (``image-rendering: pixelated``), large photos shrunk to :data:`THUMB_PX`.

Used by the report: ``gallery_html(...)`` returns the page (:func:`write_gallery` reads a
make-masks output and a dataset and writes ``gallery.html``). Until the report stage calls it,
it runs on its own::

    python -m clpipe.components.report.gallery --masks runs/masks --dataset runs/packed --out runs/review
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from ..common import storage
from ..common.artifacts import LabelIssues

log = logging.getLogger("clpipe.report")

#: Longest side of a thumbnail, in pixels.
THUMB_PX = 144
#: Rows shown overall, and flagged rows shown per class.
TOP, PER_CLASS = 48, 12
GALLERY_FILE = "gallery.html"


def thumbnail_uri(pixels: np.ndarray) -> str:
    """A ``data:image/png`` URI of an (H, W, 3) uint8 image at most THUMB_PX on its longer side."""
    from PIL import Image

    im = Image.fromarray(pixels)
    if max(im.size) > THUMB_PX:
        im.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _score(quality: float) -> str:
    """3 decimals, or 2 significant digits below 0.01 (the worst rows all round to 0.000)."""
    return f"{quality:.3f}" if quality >= 0.01 else f"{quality:.2g}"


def _card(issues: LabelIssues, i: int, rank: int, thumb: str) -> str:
    c = issues.columns
    file = str(c["file"][i])
    flagged_by = [m for m in issues.methods if c[m][i]]
    given, suggested = html.escape(str(c["given_label"][i])), html.escape(str(c["suggested_label"][i]))
    same = c["given_label"][i] == c["suggested_label"][i]
    quality = float(c["label_quality"][i])
    badge = "issue" if c["is_label_issue"][i] else "ok"
    return f"""<figure class="card {badge}">
  <div class="thumb"><img src="{thumb}" alt="{html.escape(file)}"></div>
  <figcaption>
    <div class="labels">{'<span class="given same">' + given + '</span>' if same else
      f'<span class="given">{given}</span> <span class="arrow">&rarr;</span> <span class="suggested">{suggested}</span>'}</div>
    <div class="meta"><span class="rank">#{rank}</span>
      <span class="score" title="cleanlab label quality: 0 = the model is sure the given label is wrong">quality {_score(quality)}</span></div>
    <div class="file" title="{html.escape(file)}">{html.escape(os.path.basename(file.rstrip('/')) or file)}</div>
    <div class="methods" title="{html.escape(', '.join(flagged_by) or 'no method')}">flagged by {len(flagged_by)}/{len(issues.methods)} methods</div>
  </figcaption>
</figure>"""


def gallery_html(issues: LabelIssues, thumbnails: Callable[[Sequence[int]], dict[int, str]], *,
                 classes: Sequence[str], title: str = "Label issues to review", issue_method: str = "",
                 top: int = TOP, per_class: int = PER_CLASS) -> str:
    """The page.

    Args:
        issues: The ranked table (rows worst first).
        thumbnails: rows (the ``row`` column) -> ``data:`` URI of each, for the rows shown.
        classes: Class names, in the order the per-class sections appear.
        title: Page title.
        issue_method: The method behind ``is_label_issue`` (said in the header).
        top, per_class: How many cards overall, and flagged cards per class.
    """
    c = issues.columns
    n, flagged = len(issues), int(c["is_label_issue"].sum())
    overall = list(range(min(top, n)))
    by_class = {cls: [i for i in np.flatnonzero((c["given_label"] == cls) & c["is_label_issue"])[:per_class]]
                for cls in classes}
    shown_rows = sorted({int(c["row"][i]) for i in overall + [i for v in by_class.values() for i in v]})
    uris = thumbnails(shown_rows)
    rank = {i: i + 1 for i in range(n)}

    def cards(indices) -> str:
        return "\n".join(_card(issues, i, rank[i], uris[int(c["row"][i])]) for i in indices)

    counts = {cls: int(((c["given_label"] == cls) & c["is_label_issue"]).sum()) for cls in classes}
    given_counts = {cls: int((c["given_label"] == cls).sum()) for cls in classes}
    toc = "".join(
        f'<a href="#class-{k}"><b>{html.escape(cls)}</b> {counts[cls]:,}<small>/{given_counts[cls]:,}</small></a>'
        for k, cls in enumerate(classes))
    sections = "".join(
        f'<section id="class-{k}"><h2>Given &ldquo;{html.escape(cls)}&rdquo; <small>{counts[cls]:,} flagged of '
        f'{given_counts[cls]:,}{f", worst {len(rows)} shown" if counts[cls] > len(rows) else ""}</small></h2>'
        f'<div class="grid">{cards(rows) if rows else "<p class=empty>No label issues flagged.</p>"}</div></section>'
        for k, (cls, rows) in enumerate(by_class.items()))
    method = f" by <code>{html.escape(issue_method)}</code>" if issue_method else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>{html.escape(title)}</h1>
<p><b>{flagged:,}</b> of <b>{n:,}</b> images ({flagged / max(n, 1):.1%}) flagged as label issues{method}.
Cards are ranked by cleanlab's label quality score (0 = the out-of-sample model is sure the given label is wrong):
<span class="given">given</span> &rarr; <span class="suggested">suggested</span>.</p>
<nav>{toc}</nav></header>
<main>
<section id="overall"><h2>Most likely label errors <small>worst {len(overall)} of all {n:,}</small></h2>
<div class="grid">{cards(overall)}</div></section>
{sections}
</main></body></html>
"""


def write_gallery(masks: str, dataset: str, out: str, *, subset_per_class: int = 0, subset_seed: int = 0,
                  top: int = TOP, per_class: int = PER_CLASS) -> str:
    """Writes the review gallery of a make-masks output: OUT/gallery.html (self-contained).

    The rows are those of the train view make-masks saw (the same subset settings).

    Args:
        masks: make-masks output made with --dataset (label_issues.csv, summary.json).
        dataset: The dataset it was made with (path or URL): thumbnails come from its files.
        out: Output directory (path or URL).
        subset_per_class: The class-stratified subset of the run (0 = all rows).
        subset_seed: Seed of that subset.
        top: Cards in the overall section.
        per_class: Flagged cards per class section.

    Returns:
        The URL of gallery.html.
    """
    from ..common.artifacts import Masks
    from ..common.datasets import open_split, subset_rows

    issues = LabelIssues.read(masks)
    summary = Masks.read_summary(masks)
    split = open_split(dataset, "train")
    view = split.take(subset_rows(split.labels, subset_per_class, subset_seed))
    page = gallery_html(issues, view_thumbnails(view), classes=view.classes,
                        issue_method=summary.get("issue_method", ""), top=top, per_class=per_class,
                        title=f"Label issues to review: {dataset_name(dataset)}")
    url = storage.join(out, GALLERY_FILE)
    storage.write_bytes(url, page.encode())
    return url


def dataset_name(dataset: str) -> str:
    """The folder name of the dataset, or of its source when it was prepared (``prepared.json``)."""
    from ..common.prepare import PREPARED_INFO

    info_url = storage.join(dataset, PREPARED_INFO)
    source = storage.load_json(info_url).get("source", dataset) if storage.exists(info_url) else dataset
    return os.path.basename(str(source).rstrip("/")) or str(source)


def view_thumbnails(view) -> Callable[[Sequence[int]], dict[int, str]]:
    """Thumbnails of a dataset view's rows: from the original files when the view knows them and
    they can be read from here (full resolution, only the rows shown are read), else from the
    view's (packed) pixels."""
    from ..common.errors import InputError
    from ..common.image_files import read_files
    from ..common.imaging import decode_image

    def make(rows: Sequence[int]) -> dict[int, str]:
        if view.files is not None:
            try:
                contents = read_files([str(view.files[r]) for r in rows])
                return {r: thumbnail_uri(decode_image(contents[str(view.files[r])], str(view.files[r])))
                        for r in rows}
            except InputError as e:
                log.info("thumbnails from the packed pixels: %s", e)
        images = view.take(list(rows)).images()  # only the rows shown (packed shards are read by row)
        return {r: thumbnail_uri(image) for r, image in zip(rows, images)}

    return make


_CSS = """
:root { --bad: #c0392b; --good: #1e8449; --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 16px 24px 12px; position: sticky; top: 0;
         z-index: 1; }
h1 { font-size: 20px; margin: 0 0 4px; }
header p { margin: 0 0 10px; color: var(--muted); max-width: 980px; }
nav { display: flex; flex-wrap: wrap; gap: 6px; }
nav a { text-decoration: none; color: var(--ink); border: 1px solid var(--line); border-radius: 999px;
        padding: 2px 10px; background: var(--bg); white-space: nowrap; }
nav a:hover { border-color: var(--ink); }
nav small { color: var(--muted); }
main { padding: 8px 24px 40px; }
h2 { font-size: 16px; margin: 24px 0 10px; }
section { scroll-margin-top: 130px; }
h2 small { font-weight: normal; color: var(--muted); margin-left: 6px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(168px, 1fr)); gap: 12px; }
.card { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
.card.issue { border-top: 3px solid var(--bad); }
.card.ok { border-top: 3px solid var(--line); }
.thumb { height: 152px; display: flex; align-items: center; justify-content: center; background: #eaeef2; }
.thumb img { width: 136px; height: 136px; object-fit: contain; image-rendering: pixelated; }
figcaption { padding: 8px 10px 10px; }
.labels { font-size: 15px; font-weight: 600; }
.given { color: var(--bad); text-decoration: line-through; text-decoration-thickness: 1px; }
.given.same { color: var(--ink); text-decoration: none; }
.suggested { color: var(--good); }
.arrow { color: var(--muted); }
.meta { display: flex; align-items: center; gap: 6px; color: var(--muted); margin-top: 2px; }
.score { font-variant-numeric: tabular-nums; color: var(--ink); }
.file { color: var(--muted); font-size: 12px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.methods { color: var(--muted); font-size: 11px; }
.empty { color: var(--muted); }
"""


def main(argv: Sequence[str] | None = None) -> int:
    from ..common.cli import Command, stage_main

    return stage_main("report gallery", Command(write_gallery), argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
