"""``clpipe data``: dataset helpers.

- ``fetch``: download CIFAR-10 and the published label files and pred_probs into
  ``OUT/cifar10`` and ``OUT/cl-reproduce``, checked and laid out like ``../shared/data``
  (:mod:`clpipe.fetch`); what is there already is kept.
- ``export-imagefolder``: write the seed's ImageFolder layout
  ``OUT/<split>/<class>/<id>_<class>.png`` from an ``.npz`` dataset, so rows follow the
  published ``pred_probs``/mask row order.
- ``subset``: a class-stratified subset as a small ``.npz`` that keeps the original file
  ids (so label files still match), optionally with the matching labels as seed JSON.
- ``info``: classes, sizes and fingerprint of a dataset's splits.
- ``prepare``: any dataset (ImageFolder, manifest, .npz) at a training resolution, as .npz files
  (in memory) or streamed shards (larger than memory); see ``components/common/prepare.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from clpipe import packing
from clpipe.components.common import cli, prepare, storage
from clpipe.components.common.cli import ArgumentParser
from clpipe.components.common.datasets import SPLITS, Split, export_imagefolder, open_split, subset_rows
from clpipe.components.common.errors import InputError
from clpipe.components.common.labels import load_labels
from clpipe.fetch import (
    CL_REPRODUCE_URL,
    DATASETS,
    cifar10_present,
    fetch_cifar10,
    fetch_published,
    official_cifar10,
)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="clpipe data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("export-imagefolder", help="write OUT/<split>/<class>/<id>_<class>.png")
    ex.add_argument("--dataset", required=True, help=".npz, ImageFolder root, or directory with *train/*test.npz")
    ex.add_argument("--out", required=True, help="ImageFolder root to write (path or URL)")
    ex.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    cli.add_subset_arguments(ex)

    sb = sub.add_parser("subset", help="class-stratified subset as .npz (original file ids kept)")
    sb.add_argument("--dataset", required=True)
    sb.add_argument("--split", choices=SPLITS, default="train")
    sb.add_argument("--per-class", type=int, required=True, help="images per class")
    sb.add_argument("--seed", type=int, default=0)
    sb.add_argument("--out", required=True, help="output .npz (path or URL)")
    sb.add_argument("--labels", help="a label file of the whole split to subset too")
    sb.add_argument("--labels-out", help="where to write the subset's labels (seed JSON, file -> label)")

    # Listed here for --help; 'clpipe data prepare' is parsed from prepare.prepare's signature (main).
    sub.add_parser("prepare", help="resize/crop once at a training resolution, as .npz or streamed shards")
    info = sub.add_parser("info", help="print classes, sizes and fingerprints as JSON")
    info.add_argument("dataset")

    fe = sub.add_parser("fetch", help="download CIFAR-10 and/or the published labels and pred_probs")
    fe.add_argument("datasets", nargs="+", choices=DATASETS, metavar="NAME",
                    help=f"what to fetch: {' and/or '.join(DATASETS)}")
    fe.add_argument("--out", required=True,
                    help="data folder; NAME goes to OUT/NAME (../shared/data is where configs look)")
    fe.add_argument("--cifar10-url", help="a mirror of the official cifar-10-python.tar.gz (same MD5)")
    fe.add_argument("--cl-reproduce-url", default=CL_REPRODUCE_URL,
                    help="base URL of the confidentlearning-reproduce 'cifar10' folder (default: GitHub, "
                         "pinned commit)")

    pk = sub.add_parser("pack", help="split a dataset's .npz files into verified chunks (clpipe/packing.py)")
    pk.add_argument("--dataset", required=True, help="local folder holding *train.npz and *test.npz")
    pk.add_argument("--out", required=True, help="folder for chunk-NNN.bin and manifest.json")
    pk.add_argument("--chunk-mib", type=int, default=packing.CHUNK_MIB, help="largest chunk in MiB")

    up = sub.add_parser("unpack", help="reassemble and verify packed chunks into uncompressed .npz files")
    up.add_argument("--manifest", required=True, help="the pack's manifest.json")
    up.add_argument("--chunks", nargs="+", required=True, help="folders holding the chunk files")
    up.add_argument("--out", required=True, help="folder to write the .npz files into")
    for q in (ex, sb, info, fe, pk, up):
        q.add_argument("-v", "--verbose", action="store_true")
    return p


def _export(args: argparse.Namespace) -> None:
    """All splits published together as one output with a manifest (an existing folder that is not an earlier
    export is refused, never written into)."""
    with storage.staged_output(args.out, stage="export-imagefolder", inputs=[args.dataset]) as tmp:
        for split_name in args.splits:
            split = open_split(args.dataset, split_name)
            if split_name == "train":
                split = split.take(subset_rows(split.labels, args.subset_per_class, args.subset_seed))
            n = export_imagefolder(split, tmp, split_name)
            cli.log.info("wrote %d %s images under %s", n, split_name, storage.join(args.out, split_name))


def subset_npz_bytes(split: Split) -> bytes:
    """An ``.npz`` of ``split`` that names its rows exactly as the original does."""
    ids = np.array([int(name.split("/")[-1].split("_")[0]) for name in split.names])
    arrays = {"images": split.images(), "labels": split.labels, "ids": ids, "classes": np.array(split.classes)}
    if split.exact is not None:
        arrays["exact"] = split.exact
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _subset(args: argparse.Namespace) -> None:
    split = open_split(args.dataset, args.split)
    try:
        rows = subset_rows(split.labels, args.per_class, args.seed)
    except InputError as e:  # named by the stages' parameter, subset_per_class
        raise InputError("--per-class", e.field, e.problem) from None
    given = load_labels(args.labels, split)[rows] if args.labels else None
    small = split.take(rows)
    written = [args.out, args.labels_out] if given is not None and args.labels_out else [args.out]
    for url in written:
        storage.check_new_file(url, inputs=[args.dataset, *([args.labels] if args.labels else [])])
    storage.write_bytes(args.out, subset_npz_bytes(small))
    if given is not None and args.labels_out:
        storage.save_json(args.labels_out, {f"{args.split}/{name}": int(y) for name, y in zip(small.names, given)})
    cli.log.info("wrote %d of %d %s images to %s", len(small), len(split), args.split, args.out)


def _info(args: argparse.Namespace) -> None:
    report = {}
    absent = {}
    for split_name in SPLITS:
        try:
            split = open_split(args.dataset, split_name)
        except InputError as e:
            if e.field != split_name:  # a damaged split, or no dataset at all
                raise
            absent[split_name] = e  # a dataset may have only one split
            report[split_name] = {"error": str(e)}
            continue
        report[split_name] = {
            "source": split.source,
            "n_examples": len(split),
            "classes": list(split.classes),
            "per_class": np.bincount(split.labels, minlength=split.num_classes).tolist(),
            "fingerprint": split.fingerprint(),
            "n_exact": None if split.exact is None else int(split.exact.sum()),
        }
    if len(absent) == len(SPLITS):
        raise absent[SPLITS[0]]
    json.dump(report, sys.stdout, indent=2)
    print()


def _fetch(args: argparse.Namespace) -> None:
    if not storage.is_local(args.out):
        raise InputError("--out", args.out, "must be a local folder")
    for name in dict.fromkeys(args.datasets):
        out = os.path.join(args.out, name)
        if name == "cifar10":
            fetched = not cifar10_present(out) and fetch_cifar10(
                out, official_cifar10(args.cifar10_url), log=cli.log.info
            )
        else:
            fetched = fetch_published(out, base_url=args.cl_reproduce_url, log=cli.log.info)
        if not fetched:
            cli.log.info("%s: already in %s", name, out)



def _pack(args: argparse.Namespace) -> None:
    names = [n for n in sorted(os.listdir(args.dataset)) if n.endswith(("train.npz", "test.npz"))]
    if not names:
        raise InputError(args.dataset, "", "no *train.npz or *test.npz files to pack")
    arrays = {}
    for name in names:
        with np.load(os.path.join(args.dataset, name), allow_pickle=False) as npz:
            arrays[name] = {key: npz[key] for key in npz.files}
    chunks = packing.pack(arrays, args.out, chunk_mib=args.chunk_mib)
    cli.log.info("packed %s into %d chunks under %s", names, len(chunks), args.out)


def _unpack(args: argparse.Namespace) -> None:
    try:
        written = packing.unpack(args.manifest, args.chunks, args.out)
    except packing.PackError as e:
        raise InputError(args.manifest, "chunks", str(e)) from None
    cli.log.info("verified and wrote %s", written)


def run(args: argparse.Namespace) -> None:
    commands = {"export-imagefolder": _export, "subset": _subset, "info": _info, "fetch": _fetch, "pack": _pack,
                "unpack": _unpack}
    commands[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["prepare"]:
        return cli.stage_main("data prepare", cli.Command(prepare.prepare), argv[1:], description=prepare.__doc__)
    return cli.run_stage("data", build_parser(), argv, run)
