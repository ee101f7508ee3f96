"""The serving commands of the ``metriclab`` command line: ``embed``, ``gallery
create|add|remove|calibrate|info`` and ``identify``. They use the bundle runtime only
(:mod:`metriclab.bundle`), never a training config.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from metriclab.atomic import atomic_write
from metriclab.bundle.gallery import RANK_BY
from metriclab.bundle.identify import SHORTLIST


def add_parsers(
    commands: argparse._SubParsersAction, add_backend: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add ``embed``, ``gallery`` and ``identify`` to the ``metriclab`` parser."""
    embed = commands.add_parser("embed", help="write the embeddings of images to a .npz file")
    _bundle_argument(embed)
    embed.add_argument(
        "sources", type=Path, nargs="+", metavar="FOLDER|CSV|IMAGE",
        help="a folder (of class folders, or of images), a path,label CSV, or image files",
    )  # fmt: skip
    embed.add_argument("-o", "--output", type=Path, required=True, help=".npz file to write")
    embed.add_argument("--class", dest="label", metavar="NAME", help="the class of every image")
    embed.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_backend(embed)
    _add_gallery(commands, add_backend)
    identify = commands.add_parser(
        "identify", help="the enrolled class of each image, or unknown",
        description="Identify images against a gallery. Output: image, class (or 'unknown' when "
        "the best match is farther than the open-set threshold), the best candidate class and its "
        "distance (smaller is closer; for a bundle with a learned comparator, minus its pair "
        "score).",
    )  # fmt: skip
    _gallery_argument(identify)
    identify.add_argument(
        "images", type=Path, nargs="+", metavar="IMAGE", help="image files to identify"
    )
    identify.add_argument("-k", type=int, default=5, help="neighbours that vote (--rule vote)")
    identify.add_argument(
        "--rule",
        choices=("nearest", "vote", "prototype"),
        default="nearest",
        help="nearest item (default), a vote of the -k nearest, or the nearest class mean",
    )
    identify.add_argument(
        "--threshold", default="auto", metavar="auto|bundle|gallery|none|DISTANCE",
        help="open-set threshold: the gallery's calibration if any, else the bundle's (auto); "
        "the bundle's (calibrated at export); the gallery's (leave-one-class-out); none; or a "
        "distance",
    )  # fmt: skip
    identify.add_argument(
        "--shortlist", type=int, default=SHORTLIST, metavar="N",
        help="for a bundle with a learned comparator: how many nearest items (by the "
        f"embedding's distance) it re-scores per image (default {SHORTLIST})",
    )  # fmt: skip
    output = identify.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON lines")
    output.add_argument("--csv", action="store_true", help="print CSV")
    add_backend(identify)


def _bundle_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "bundle", type=Path, metavar="BUNDLE", help="a bundle folder written by 'metriclab export'"
    )


def _gallery_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "gallery",
        type=Path,
        metavar="GALLERY",
        help="a gallery folder written by 'metriclab gallery create'",
    )


def _sources_arguments(parser: argparse.ArgumentParser) -> None:
    """The images to enrol (folders, CSVs or files), the class of loose files, progress."""
    parser.add_argument(
        "sources",
        type=Path,
        nargs="+",
        metavar="FOLDER|CSV|IMAGE",
        help="a folder of class folders, a path,label CSV, or image files",
    )
    parser.add_argument("--class", dest="label", metavar="NAME", help="class of image files")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_gallery(
    commands: argparse._SubParsersAction, add_backend: Callable[[argparse.ArgumentParser], None]
) -> None:
    gallery = commands.add_parser("gallery", help="enrol your own classes for 'identify'")
    actions = gallery.add_subparsers(dest="gallery_command", required=True)
    create = actions.add_parser("create", help="embed a folder or CSV of classes into a gallery")
    _bundle_argument(create)
    _sources_arguments(create)
    create.add_argument("-o", "--output", type=Path, required=True, help="gallery folder")
    create.add_argument(
        "--rank-by", choices=RANK_BY, default="auto",
        help="what ranks matches: the bundle's learned comparator (auto, when it has one) or the "
        "embedding's distance alone; saved with the gallery",
    )  # fmt: skip
    add_backend(create)
    add = actions.add_parser("add", help="enrol more images (incremental)")
    _gallery_argument(add)
    _sources_arguments(add)
    add_backend(add)
    remove = actions.add_parser("remove", help="remove a class or an item")
    _gallery_argument(remove)
    which = remove.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--class", dest="label", metavar="NAME", help="remove every item of this class"
    )
    which.add_argument("--item", metavar="ID", help="remove the item with this id")
    add_backend(remove)
    calibrate = actions.add_parser(
        "calibrate", help="set the gallery's open-set threshold, leave-one-class-out"
    )
    _gallery_argument(calibrate)
    calibrate.add_argument("--far", type=float, default=0.01, help="target false-alarm rate")
    add_backend(calibrate)
    info = actions.add_parser("info", help="summarise a gallery")
    _gallery_argument(info)
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_backend(info)


def embed_command(args: argparse.Namespace) -> None:
    from metriclab.bundle import Bundle
    from metriclab.bundle.identify import embed_items
    from metriclab.bundle.sources import resolve_items

    bundle = Bundle.load(args.bundle, args.backend)
    items = resolve_items(args.sources, args.label)
    vectors = embed_items(bundle, items, progress=not args.no_progress)
    arrays = {"ids": np.asarray([i.item_id for i in items]), "vectors": vectors}
    if all(item.label is not None for item in items):
        arrays["labels"] = np.asarray([i.label for i in items])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_write(args.output, binary=True) as handle:
        handle.write(buffer.getvalue())
    print(f"wrote {args.output}: {len(items)} embeddings of dimension {vectors.shape[1]}")


def gallery_command(args: argparse.Namespace) -> None:
    from metriclab.bundle import Bundle, Gallery

    action = args.gallery_command
    if action == "create":
        if (args.output / "gallery.json").exists():
            raise ValueError(f"{args.output} is already a gallery; use 'gallery add' or another -o")
        bundle = Bundle.load(args.bundle, args.backend)
        gallery = Gallery.create(
            bundle, args.sources, args.label, progress=not args.no_progress, rank_by=args.rank_by
        )
        gallery.save(args.output)
        print(f"wrote {args.output}: {len(gallery)} items of {len(gallery.class_names)} classes")
        return
    gallery = Gallery.load(args.gallery, backend=args.backend)
    if action == "info":
        _print_info(gallery.info(), args.json)
        return
    if action == "add":
        count = gallery.add(args.sources, args.label, progress=not args.no_progress)
        done = f"added {count} items"
    elif action == "remove":
        count = gallery.remove(class_name=args.label, item_id=args.item)
        done = f"removed {count} items"
    else:
        record = gallery.calibrate(args.far)
        done = f"threshold {record['distance']:.4f} ({record['rule']}, {record['probes']} probes)"
    gallery.save()
    print(f"{args.gallery}: {done}; {len(gallery)} items of {len(gallery.class_names)} classes")


def _print_info(info: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=1))
        return
    threshold, bundle_threshold = info["threshold"], info["bundle_open_set"]
    print(
        f"gallery {info['folder']}: {info['items']} items, {info['classes']} classes, dim {info['dim']}"
    )
    print(f"bundle {info['bundle']['path']} (identity {info['bundle']['identity']})")
    ranked = info["ranked_by"]
    print(
        f"distance {info['distance']['name']}"
        + (", ranked by the learned comparator" if ranked == "comparator" else "")
    )
    for name, value in (("gallery", threshold), ("bundle", bundle_threshold)):
        text = "none" if value is None else f"{value['distance']:.4f} ({value['rule']})"
        print(f"open-set threshold ({name}): {text}")
    for name, count in info["per_class"].items():
        print(f"  {name:<24} {count}")


def identify_command(args: argparse.Namespace) -> None:
    from metriclab.bundle import Gallery

    gallery = Gallery.load(args.gallery, backend=args.backend)
    threshold: float | str = args.threshold
    with contextlib.suppress(ValueError):  # a number is a distance; else a named source
        threshold = float(args.threshold)
    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    answers = gallery.identify(args.images, args.rule, args.k, threshold, shortlist=args.shortlist)
    limit = gallery.resolve_threshold(threshold)
    rows = [
        {
            "image": str(image), "label": a.label, "candidate": a.candidate,
            "distance": a.distance, "item": a.item_id, "threshold": limit,
        }
        for image, a in zip(args.images, answers, strict=True)
    ]  # fmt: skip
    if args.json:
        for row in rows:
            print(json.dumps(row))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(f"open-set threshold {limit:.4f} (rule {args.rule})")
        for row in rows:
            print(
                f"{row['image']}  {row['label']:<20} {row['candidate']:<20} {row['distance']:.4f}"
            )
