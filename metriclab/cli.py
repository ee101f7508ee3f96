"""The ``metriclab`` command line: train, eval, episodes, index, export, verify, configs.

Heavy modules (torch, faiss, the config's registries) are imported inside the command functions,
so ``metriclab --help`` and ``--version`` answer without loading them.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TextIO

_PYTHON_SHOW_WARNING = warnings.showwarning
RUN_DIR_HELP = (
    "a run folder made by 'metriclab train' (holds config.yaml, split.json, checkpoints/)"
)
BUNDLE_HELP = "a bundle folder made by 'metriclab export RUN_DIR -o BUNDLE'"


def _version() -> str:
    """The package version, read without importing torch (``metriclab/__init__`` may)."""
    from importlib import metadata

    try:
        return metadata.version("metriclab")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metriclab", description="Metric learning and few-shot evaluation."
    )
    parser.add_argument("--version", action="version", version=f"metriclab {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model; leaves a run folder")
    train.add_argument(
        "--config", help="a shipped config name or a YAML file (default: digits-siamese)"
    )
    train.add_argument("--run-dir", type=Path, help="run folder (default: runs/<config>-<time>)")
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR with its saved config; key=value overrides may change "
        "train.steps (train longer), train.log_every, train.checkpoint_every, train.keep_last, "
        "train.validate_every and train.patience",
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.steps=100"
    )

    evaluate = commands.add_parser("eval", help="evaluate a run on its unseen classes")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR", help=RUN_DIR_HELP)
    evaluate.add_argument(
        "--episodes", type=Path, action="append", default=[], metavar="FILE",
        help="also score this episode file (repeat for several), e.g. episodes/digits-5way-1shot.jsonl",
    )  # fmt: skip
    evaluate.add_argument("--no-plots", action="store_true", help="skip roc.png and embeddings.png")
    evaluate.add_argument(
        "overrides", nargs="*", metavar="key=value",
        help="data.* / eval.* overrides, e.g. data.path=/elsewhere/omniglot eval.n_way=5",
    )  # fmt: skip
    evaluate.add_argument(
        "--json", type=Path, help="write the results here (default: RUN_DIR/results.json)"
    )
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    commands.add_parser("configs", help="list the configs shipped with metriclab")

    export = commands.add_parser("export", help="export a run as a deployable verifier bundle")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR", help=RUN_DIR_HELP)
    export.add_argument("-o", "--output", type=Path, required=True, help="bundle folder")
    export.add_argument(
        "--target-far",
        type=float,
        help="calibrate the threshold to this false accept rate (default: equal error rate)",
    )

    verify = commands.add_parser(
        "verify",
        help="are two images the same class? exit status 0: same, 1: different",
        description="Score two images with a bundle: score = bias − distance(embedding A, "
        "embedding B), the Siamese logit (higher: more alike); 'same' when the score reaches "
        "the bundle's calibrated threshold. Exit status 0: same, 1: different, 2: error.",
    )
    verify.add_argument("bundle", type=Path, metavar="BUNDLE", help=BUNDLE_HELP)
    verify.add_argument("first", type=Path, metavar="IMAGE_A", help="the first image file")
    verify.add_argument("second", type=Path, metavar="IMAGE_B", help="the second image file")
    _add_backend(verify)
    _add_episodes(commands)
    _add_index(commands)
    _add_runtime(commands)
    return parser


def _add_index(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser("index", help="build and query a FAISS gallery with a bundle")
    actions = index.add_subparsers(dest="index_command", required=True)
    build = actions.add_parser("build", help="embed a data split with a bundle and index it")
    build.add_argument("bundle", type=Path, metavar="BUNDLE", help=BUNDLE_HELP)
    build.add_argument("-o", "--output", type=Path, required=True, help="index file to write")
    build.add_argument(
        "--split", choices=("test", "train", "all"), default="test",
        help="which classes of the run's recorded split to index: the unseen test classes "
        "(default), the training classes, or all",
    )  # fmt: skip
    build.add_argument(
        "--kind", choices=("flat", "ivf", "hnsw"), default="flat",
        help="FAISS index: flat (exact, default), ivf (inverted lists, approximate, for large "
        "galleries) or hnsw (graph, approximate, fast queries)",
    )  # fmt: skip
    build.add_argument("overrides", nargs="*", metavar="key=value", help="data.* overrides")
    query = actions.add_parser("query", help="the nearest gallery items of images")
    query.add_argument(
        "index", type=Path, metavar="INDEX", help="an index file made by 'metriclab index build'"
    )
    query.add_argument(
        "images", type=Path, nargs="+", metavar="IMAGE", help="image files to look up"
    )
    query.add_argument("-k", type=int, default=5, help="neighbours per image (default 5)")


def _say(message: str) -> None:
    """Print once: under torchrun only rank 0 speaks."""
    if os.environ.get("RANK", "0") == "0":
        print(message)


def _add_episodes(commands: argparse._SubParsersAction) -> None:
    episodes = commands.add_parser("episodes", help="make, show and import fixed episode sets")
    actions = episodes.add_subparsers(dest="episodes_command", required=True)
    make = actions.add_parser("make", help="draw a seeded episode set from a config's data")
    make.add_argument(
        "--config", help="a shipped config name or a YAML file (default: digits-siamese)"
    )
    make.add_argument(
        "--split", choices=("test", "train"), default="test",
        help="draw from the config's unseen test classes (default) or its training classes",
    )  # fmt: skip
    for flag, help_text in (
        ("--n-way", "classes per episode (default: the config's eval.n_way)"),
        ("--k-shot", "support items per class (default: eval.k_shot)"),
        ("--n-query", "query items per class (default: eval.n_query)"),
        ("--count", "number of episodes (default: eval.episodes)"),
        ("--seed", "the generator's seed (default: eval.seed)"),
    ):
        make.add_argument(flag, type=int, help=help_text)
    make.add_argument(
        "--within-group", action="store_true", help="draw each episode from one group (alphabet)"
    )
    make.add_argument("-o", "--output", type=Path, required=True, help="episode file to write")
    make.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.size=28"
    )
    show = actions.add_parser("show", help="summarise an episode file")
    show.add_argument("file", type=Path, metavar="FILE", help="an episode file (.jsonl)")
    runs = actions.add_parser(
        "import-omniglot-runs", help="turn an Omniglot one-shot runs folder into an episode file"
    )
    runs.add_argument("runs_dir", type=Path, metavar="DIR", help="the folder holding runNN/")
    runs.add_argument("-o", "--output", type=Path, required=True, help="episode file to write")


def _train(args: argparse.Namespace) -> None:
    from metriclab import training

    if args.resume is not None:
        if args.run_dir is not None and args.run_dir != args.resume:
            raise ValueError("--resume RUN_DIR already names the run folder; drop --run-dir")
        if args.config is not None:
            raise ValueError(
                "--config cannot be combined with --resume: a resumed run keeps its saved config; "
                f"pass only the keys that may change, e.g. train.steps=N ({', '.join(training.RESUMABLE)})"
            )
        training.train(
            None,
            args.resume,
            resume=True,
            progress=not args.no_progress,
            overrides=args.overrides,
        )
        _say(f"run folder: {args.resume}")
        return
    from metriclab.config import resolve_config

    config = resolve_config(args.config, args.overrides)
    run_dir = args.run_dir or Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    training.train(config, run_dir, progress=not args.no_progress)
    _say(f"run folder: {run_dir}")


def _eval(args: argparse.Namespace) -> None:
    from metriclab.evaluation.run import RESULTS, evaluate_run

    evaluate_run(
        args.run_dir,
        args.json,
        episode_files=args.episodes,
        overrides=args.overrides,
        plots=not args.no_plots,
        progress=not args.no_progress,
        on_report=lambda report: print(report.table(), flush=True),  # before any file is written
    )
    print(f"results: {args.json or args.run_dir / RESULTS}")


def _episodes_make(args: argparse.Namespace) -> None:
    import dataclasses

    from metriclab.assemble import build_data
    from metriclab.config import resolve_config
    from metriclab.data import EpisodeSet

    config = resolve_config(args.config, args.overrides)
    train, test = build_data(config)
    data = test if args.split == "test" else train
    settings = {
        "n_way": config.eval.n_way if args.n_way is None else args.n_way,
        "k_shot": config.eval.k_shot if args.k_shot is None else args.k_shot,
        "n_query": config.eval.n_query if args.n_query is None else args.n_query,
        "episodes": config.eval.episodes if args.count is None else args.count,
        "seed": config.eval.seed if args.seed is None else args.seed,
    }
    episodes = EpisodeSet.sample(data, **settings, within_group=args.within_group)
    command = (
        f"metriclab episodes make --config {args.config or config.name} --split {args.split} "
        f"--n-way {settings['n_way']} --k-shot {settings['k_shot']} "
        f"--n-query {settings['n_query']} --count {settings['episodes']} --seed {settings['seed']}"
        f"{' --within-group' if args.within_group else ''} -o {args.output}"
        + "".join(f" {o}" for o in args.overrides)
    )
    meta = {
        **episodes.meta,
        "data": f"{data.description}, {args.split} split of config {config.name} "
        f"(classes {', '.join(data.class_names)})",
        "split": args.split,
        "config_data": dataclasses.asdict(config.data),
        "command": command,
    }
    fingerprint = dataclasses.replace(episodes, meta=meta).save(args.output)
    print(f"wrote {args.output}: {episodes.n_episodes} episodes; fingerprint {fingerprint}")


def _episodes_show(args: argparse.Namespace) -> None:
    from metriclab.data import EpisodeSet

    print(EpisodeSet.load(args.file).summary(str(args.file)))


def _episodes_import_runs(args: argparse.Namespace) -> None:
    from metriclab.data import load_omniglot_runs

    # The meta records the absolute root, so evaluation finds the images from any folder.
    episodes, _images = load_omniglot_runs(args.runs_dir.resolve())
    fingerprint = episodes.save(args.output)
    print(f"wrote {args.output}: {episodes.n_episodes} runs; fingerprint {fingerprint}")


def _episodes(args: argparse.Namespace) -> None:
    handlers = {
        "make": _episodes_make,
        "show": _episodes_show,
        "import-omniglot-runs": _episodes_import_runs,
    }
    handlers[args.episodes_command](args)


def _configs(args: argparse.Namespace) -> None:
    from metriclab.config import load_config, shipped_configs

    for name in shipped_configs():
        train = load_config(name).get("train", {})
        print(
            f"{name:<22} objective={train.get('objective', 'siamese')} loss={train.get('loss', '-')}"
        )


def _export(args: argparse.Namespace) -> None:
    from metriclab.export import export_bundle

    manifest = export_bundle(args.run_dir, args.output, target_far=args.target_far)
    threshold = manifest["threshold"]
    print(f"bundle: {args.output}")
    print(
        f"threshold {threshold['value']:.4f} ({threshold['rule']}, on {threshold['calibrated_on']})"
    )
    if manifest["files"]["onnx"] is None:
        print(
            "onnx: skipped (install the export extra, pip install 'metriclab[export]', or the "
            "model uses an operator ONNX cannot express); the bundle needs torch to serve"
        )


def _verify(args: argparse.Namespace) -> int:
    from metriclab.bundle import Bundle

    bundle = Bundle.load(args.bundle, args.backend)
    score, same = bundle.verify(args.first, args.second)
    verdict = "same" if same else "different"
    print(f"score {score:.4f}  threshold {bundle.threshold:.4f}  → {verdict}")
    comparator = bundle.manifest.get("comparator")
    what = (
        f"bias − {bundle.manifest['distance']['name']} distance of the two embeddings"
        if comparator is None
        else f"the learned {comparator['name']} comparator's pair score"
    )
    print(f"(score = {what}; higher is more alike; same when score ≥ threshold)")
    return 0 if same else 1


def _index(args: argparse.Namespace) -> None:
    from metriclab.gallery import build_gallery, query_gallery

    if args.index_command == "build":
        size = build_gallery(args.bundle, args.output, args.split, args.overrides, args.kind)
        print(f"wrote {args.output}: {size} gallery items ({args.kind})")
        return
    for image, matches in zip(
        args.images, query_gallery(args.index, args.images, args.k), strict=True
    ):
        print(image)
        for rank, match in enumerate(matches, start=1):
            print(f"  {rank}. {match.class_name:<24} {match.distance:10.4f}  {match.item_id}")


HANDLERS = {
    "train": _train,
    "eval": _eval,
    "configs": _configs,
    "export": _export,
    "verify": _verify,
    "episodes": _episodes,
    "index": _index,
    "embed": lambda args: _runtime("embed_command", args),
    "gallery": lambda args: _runtime("gallery_command", args),
    "identify": lambda args: _runtime("identify_command", args),
}


def _runtime(handler: str, args: argparse.Namespace) -> int | None:
    """Run a serving command (``embed``, ``gallery``, ``identify``: metriclab.cli_runtime)."""
    from metriclab import cli_runtime

    return getattr(cli_runtime, handler)(args)


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=("auto", "torchscript", "onnx"), default="auto",
        help="embedding engine (default auto: TorchScript when torch is installed, else ONNX)",
    )  # fmt: skip


def _add_runtime(commands: argparse._SubParsersAction) -> None:
    from metriclab.cli_runtime import add_parsers

    add_parsers(commands, _add_backend)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse, letting key=value overrides come after options too (``eval RUN --episodes F k=v``)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def _user_warnings() -> tuple[type[Warning], ...]:
    """The warnings about the user's run or data, printed as one ``warning:`` line each."""
    from metriclab.checkpoints import DamagedCheckpointWarning
    from metriclab.data.cache import ResizeWarning
    from metriclab.runs import SplitWarning

    return SplitWarning, DamagedCheckpointWarning, ResizeWarning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A warning about the user's run or data (e.g. a changed split) as one ``warning:`` line;
    any other warning as Python shows it."""
    if not issubclass(category, _user_warnings()):
        _PYTHON_SHOW_WARNING(message, category, filename, lineno, file, line)
    elif os.environ.get("RANK", "0") == "0":
        print(f"warning: {message}", file=sys.stderr)


#: Advice for an operating-system error that reached the command line without a sentence of ours.
_OS_ADVICE = {
    errno.EACCES: "you lack permission there; choose a folder you can write to",
    errno.EPERM: "you lack permission there; choose a folder you can write to",
    errno.EROFS: "that file system is read-only; choose a writable folder",
    errno.EEXIST: "it already exists; remove it or choose another name",
    errno.ENOENT: "check the path",
    errno.EISDIR: "it is a folder; give a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.ENOSPC: "the disk is full; free space or choose another folder",
}


def _sentence(failure: BaseException) -> str:
    """The error as one sentence: a raw ``[Errno N] …`` becomes the path, the reason, the fix."""
    if not (isinstance(failure, OSError) and str(failure).startswith("[Errno")):
        return str(failure)
    where = f"{failure.filename}: " if failure.filename else ""
    advice = _OS_ADVICE.get(failure.errno or 0, "check the path and its permissions")
    return f"{where}{(failure.strerror or 'failed').lower()}; {advice}"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        with warnings.catch_warnings():  # restores warnings.showwarning afterwards
            warnings.showwarning = _show_warning
            # The user-facing warnings are part of the command's output: Python's warning
            # filters (-W ignore, PYTHONWARNINGS) are for developers and must not hide them.
            for category in _user_warnings():
                warnings.filterwarnings("default", category=category)
            # metriclab's own TorchScript export / load: torch's notice that it plans to retire
            # TorchScript is for metriclab's developers, not for the person running a command.
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning
            )
            code = HANDLERS[args.command](args)
    except (ValueError, OSError, RuntimeError) as failure:
        print(f"error: {_sentence(failure)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
