"""The command line: ``python -m minialexnet <command> --help``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from .model import ENGINES, VARIANTS


def cmd_summary(args: argparse.Namespace) -> int:
    from .accounting import summarize
    from .model import build_alexnet

    print(summarize(build_alexnet(args.variant)).table())
    return 0


def cmd_tour(args: argparse.Namespace) -> int:
    from .tour import run_tour

    return run_tour()


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import VARIANT, check_arguments, run_bench

    try:  # both backends: --repeats is theirs too (the GPU bench ignores the cpu-only options)
        check_arguments(args.batch_sizes, args.repeats, args.processes, args.engine, VARIANT)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    if args.backend == "cuda":
        from .model import cuda_unavailable_reason

        why = cuda_unavailable_reason()  # checked before any kernel module imports numba
        if why is not None:
            print(f"bench --backend cuda: {why}", file=sys.stderr)
            return 2
        from .cuda.bench import BenchConfig, run

        return run(BenchConfig(repeats=args.repeats, compare_torch=not args.no_torch))
    return run_bench(
        args.batch_sizes,
        repeats=args.repeats,
        processes=args.processes,
        engine=args.engine,
        compare_torch=not args.no_torch,
    )


def cmd_exercises(args: argparse.Namespace) -> int:
    from .exercises import project_root, write_student_copy

    layers = split_layers(args.layers)
    try:
        regions = write_student_copy(args.outdir, layers)
    except (ValueError, FileNotFoundError) as error:  # OUTDIR, --layers, not a git checkout
        print(error, file=sys.stderr)
        return 2
    extra = {r.tag for r in regions} - set(layers or [r.tag for r in regions])
    if extra:  # conv and im2col: one convolution written twice (exercises.SAME_MATH)
        print(f"also stripped, the same math written again: {', '.join(sorted(extra))}")
    print(f"wrote a student copy to {args.outdir}: {len(regions)} regions replaced by hints")
    for region in regions:
        where = f"{region.path.relative_to(project_root()).as_posix()}:{region.begin + 1}"
        print(f"  {region.tag:<12} {where:<34} {region.task}")
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    from .notebooks import LESSONS_DIR, lesson_scripts, write_notebooks

    lessons = args.lessons or LESSONS_DIR
    scripts = lesson_scripts(lessons)
    if not scripts:  # an installed wheel has no lessons/: they live in the clone
        print(f"no lessons (NN_*.py) in {lessons}: pass --lessons DIR", file=sys.stderr)
        return 2
    for path in write_notebooks(args.outdir, scripts):
        print(f"wrote {path}")
    print(f"open them with: jupyter lab {args.outdir} (or upload one to Colab)")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from .grade import draw_seed, grade, grade_table, write_results

    seed = draw_seed() if args.seed is None else args.seed
    try:
        grades = grade(
            split_layers(args.layers),
            engine=args.engine,
            student=args.student,
            timeout=args.timeout,
            seed=seed,
        )
    except (ValueError, OSError) as error:  # OSError: a --student folder that is missing
        print(error, file=sys.stderr)
        return 2
    # the seed first: the table stays the last thing printed, after any student output (-v)
    print(f"inputs drawn from seed {seed}: --seed {seed} grades the same inputs again")
    print(grade_table(grades, verbose=args.verbose))
    if args.json is not None:
        try:
            write_results(args.json, grades, seed)
        except OSError as error:
            print(f"grade: cannot write --json {args.json}: {error}", file=sys.stderr)
            return 2
    # exit 0 only when something was graded and all of it passed
    return 0 if grades and all(g.passed for g in grades) else 1


def cmd_train(args: argparse.Namespace) -> int:
    from .train import run_train

    # only the options typed on the command line (the rest are SUPPRESSed): with --resume,
    # everything not typed comes from the checkpoint's config, not from these defaults
    return run_train({k: v for k, v in vars(args).items() if k not in ("command", "func")})


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .inference import run_evaluate
    from .pretrained import published_comparison

    return run_evaluate(
        args.checkpoint,
        dataset=args.dataset,
        data=args.data,
        split=args.split,
        ten_view=args.ten_view,
        engine=args.engine,
        comparison=published_comparison(),
    )


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import run_predict

    return run_predict(
        args.checkpoint, args.images, top=args.top, ten_view=args.ten_view, engine=args.engine
    )


def cmd_convert(args: argparse.Namespace) -> int:
    from .pretrained import run_convert

    return run_convert(args.weights, args.out, overwrite=args.overwrite)


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    from .data import DATASETS
    from .optim import INITS
    from .train import TrainConfig

    d = TrainConfig()
    p = commands.add_parser(
        "train",
        help="train a network (no options: the mini net on digits, a few minutes on a CPU)",
        description="Train with the paper's SGD, augmentation and schedule. Writes "
        "checkpoint.npz, history.json and curves.png to --out after every epoch; Ctrl-C or "
        "SIGTERM saves a checkpoint and stops; --resume continues it exactly. Before training, "
        "option values, --out (writable, free space, no other run in it), the memory the "
        "stored images need and the validation split's size are checked. On --resume, options "
        "that define the data, split or network (--dataset --data --variant --init --seed "
        "--image-size --mean --val-fraction) are refused if changed; the others apply from "
        "the resumed point and are recorded in the run's 'changes' (--batch-size only between "
        "epochs); the table: minialexnet/train.py.",
        argument_default=argparse.SUPPRESS,
    )
    bool_flag = argparse.BooleanOptionalAction
    p.add_argument("--dataset", choices=DATASETS, help=f"default {d.dataset}")
    p.add_argument("--data", metavar="PATH", help="dataset folder (cifar10: cifar-10-batches-bin)")
    p.add_argument("--variant", choices=VARIANTS, help=f"default {d.variant}")
    p.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, help=f"initial learning rate, default {d.lr}")
    p.add_argument("--momentum", type=float, help=f"default {d.momentum}")
    p.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}")
    p.add_argument("--init", choices=INITS, help=f"weight initialization, default {d.init}")
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument(
        "--image-size",
        type=int,
        dest="image_size",
        help="stored image size S (default: input size x 256/224, as the paper's 256/224)",
    )
    p.add_argument(
        "--mean", choices=("pixel", "channel"), help=f"mean subtracted, default {d.mean}"
    )
    p.add_argument("--random-crop", action=bool_flag, help="default on")
    p.add_argument("--flip", action=bool_flag, help="default: on, except for digits")
    p.add_argument("--pca", action=bool_flag, help="PCA colour augmentation (default as --flip)")
    p.add_argument("--pca-sigma", type=float, help=f"default {d.pca_sigma}")
    p.add_argument("--val-fraction", type=float, help=f"default {d.val_fraction}")
    p.add_argument(
        "--patience",
        type=int,
        help=f"epochs without improvement before lr/10, default {d.patience}",
    )
    p.add_argument("--max-lr-drops", type=int, help=f"default {d.max_lr_drops}")
    p.add_argument("--ten-view", action=bool_flag, help="final test on the paper's 10 views")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: a new runs/<name>-<time>; with --resume: the "
        "checkpoint's); one holding another run is refused unless --overwrite",
    )
    p.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="continue a run from its checkpoint.npz (changed options: see above)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (its checkpoint, history and curves)",
    )
    p.add_argument("--backend", choices=("cpu", "cuda"), help=f"default {d.backend}")
    add_engine_option(p)
    p.add_argument("--skip-bad", action=bool_flag, help="skip unreadable images")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data parallel over MPI: run as mpiexec -n N python -m minialexnet train "
        '--distributed; --batch-size stays the global batch (needs pip install -e ".[mpi]")',
    )
    p.add_argument(
        "--model-parallel",
        action="store_true",
        help="the paper's two-GPU split as 2 MPI ranks: mpiexec -n 2 python -m minialexnet "
        "train --variant paper --model-parallel (each rank holds half of every layer)",
    )
    p.add_argument(
        "--mpi-timeout",
        type=float,
        metavar="SECONDS",
        help="with --distributed or --model-parallel: how long a rank waits for the others in "
        "a collective before it ends the run (a rank died or hung); default 300",
    )
    p.set_defaults(func=cmd_train)


def add_engine_option(p: argparse.ArgumentParser) -> None:
    """``--engine`` of train, evaluate and predict: which implementation of the layers runs
    on the CPU. Both compute the same network with the same parameters, so a checkpoint runs
    on either, whichever trained it."""
    from .model import default_engine

    p.add_argument(
        "--engine",
        choices=tuple(ENGINES),
        help=f"CPU layers: reference (plain NumPy) or fast; default {default_engine()}",
    )


def split_layers(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minialexnet",
        description="AlexNet from scratch in NumPy: summaries, gradient checks, benchmarks.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("summary", help="per-layer parameters, MACs and activation memory")
    p.add_argument("--variant", choices=VARIANTS, default="ungrouped")
    p.set_defaults(func=cmd_summary)

    p = commands.add_parser("tour", help="the parameter table and every gradient check, narrated")
    p.set_defaults(func=cmd_tour)

    p = commands.add_parser(
        "bench",
        help="time the ungrouped AlexNet (float32), CPU or GPU",
        description="CPU: time the reference engine, the fast engine and PyTorch (where "
        "importable), each in child processes of its own, one at a time, after checking that "
        "they agree; prints min/median/max ms, images/s, GFLOP/s, peak MB and the ratio to "
        "PyTorch (details: minialexnet/bench.py). GPU: the Numba-CUDA kernels.",
    )
    p.add_argument(
        "--backend",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cpu: our NumPy engines; cuda: the Numba-CUDA kernels, GEMM versions and a "
        "batch-128 step",
    )
    p.add_argument(
        "--batch",
        "--batch-sizes",
        dest="batch_sizes",
        type=int,
        nargs="+",
        default=[1, 8, 32],
        metavar="N",
        help="batch sizes (default 1 8 32; cpu only)",
    )
    p.add_argument(
        "--repeats", type=int, default=5, help="timed calls per pass and process (default 5)"
    )
    p.add_argument(
        "--processes",
        type=int,
        default=3,
        metavar="N",
        help="child processes per framework and batch size (default 3; cpu only)",
    )
    p.add_argument(
        "--engine",
        choices=(*ENGINES, "both"),
        default="both",
        help="which of our engines to time (default both; cpu only)",
    )
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.set_defaults(func=cmd_bench)

    p = commands.add_parser("exercises", help="write a student copy with the layers blanked out")
    p.add_argument("outdir", help="a new or empty folder outside the project, for the student copy")
    p.add_argument("--layers", help="comma-separated exercise tags (default: all), e.g. conv,pool")
    p.set_defaults(func=cmd_exercises)

    p = commands.add_parser("notebooks", help="write every lesson as a Jupyter notebook (.ipynb)")
    p.add_argument("outdir", nargs="?", default="notebooks", help="default: notebooks")
    p.add_argument("--lessons", help="the lessons' folder (default: this clone's lessons/)")
    p.set_defaults(func=cmd_notebooks)

    p = commands.add_parser(
        "grade", help="grade each layer's forward and backward (exit 0: all pass)"
    )
    p.add_argument("--layers", help="comma-separated layers (default: all), e.g. conv,lrn")
    p.add_argument(
        "--engine",
        choices=tuple(ENGINES),
        default="reference",
        help="whose layers to grade: the reference a student writes (default) or the fast engine",
    )
    p.add_argument(
        "--student",
        metavar="DIR",
        help="a student copy to grade (default: this checkout's own layers)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="time limit for each layer's subprocess (default 60)",
    )
    p.add_argument(
        "--seed", type=int, help="replay a grading's random inputs (default: drawn fresh)"
    )
    p.add_argument(
        "--json", metavar="PATH", help="also write the result as Gradescope's results.json"
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="the failing checks and the student output"
    )
    p.set_defaults(func=cmd_grade)

    add_train_parser(commands)

    p = commands.add_parser(
        "evaluate",
        help="top-1/top-5 accuracy of a checkpoint",
        description="A training run's checkpoint: on its dataset's test (or val) split. "
        "ImageNet weights (convert): on --data DIR, one folder per WordNet id (DIR/<wnid>/ "
        "or DIR/val/<wnid>/; any subset of the 1000, e.g. Imagenette), read in batches.",
    )
    p.add_argument("checkpoint", help="a checkpoint.npz written by train, or by convert")
    p.add_argument("--dataset", help="default: the one it was trained on")
    p.add_argument(
        "--data", metavar="PATH", help="default: the one it was trained on (ImageNet weights: DIR)"
    )
    p.add_argument(
        "--split",
        choices=("test", "val"),
        help="a run's checkpoint: test (default) or val; not for ImageNet weights",
    )
    p.add_argument(
        "--ten-view", action="store_true", help="average the 10 views (5 if trained without flips)"
    )
    add_engine_option(p)
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser(
        "predict",
        help="the top-5 classes of image files",
        description="The most probable classes of each image file, read as the checkpoint's "
        "training images were made. A digits checkpoint reads one digit drawn in one colour on "
        "a plain background (black on white as paint programs draw, or white on black): it is "
        "cropped to its ink, scaled and thickened like the dataset's 8x8 digits; a photograph "
        "is refused. Other checkpoints: the shorter side rescaled, the centre crop (ImageNet "
        "weights from convert: torchvision's preprocessing, the 1000 ImageNet classes).",
    )
    p.add_argument("checkpoint", help="a checkpoint.npz written by train, or by convert")
    p.add_argument("images", nargs="+", help="JPEG/PNG files")
    p.add_argument(
        "--top",
        type=int,
        default=5,
        help="how many classes to show (default 5; >= 1; all classes when the net has fewer)",
    )
    p.add_argument(
        "--ten-view", action="store_true", help="average the 10 views (5 if trained without flips)"
    )
    add_engine_option(p)
    p.set_defaults(func=cmd_predict)

    p = commands.add_parser(
        "convert",
        help="torchvision's AlexNet weights (.pth) -> a checkpoint for predict and evaluate",
        description="Read a torchvision AlexNet state_dict (torch.save's zip or older format) "
        "without running its pickle, check every key and shape, and write the weights with "
        "ImageNet's classes and torchvision's preprocessing (minialexnet/pretrained.py).",
    )
    p.add_argument("weights", help="e.g. alexnet-owt-7be5be79.pth (python data/fetch.py alexnet)")
    p.add_argument("out", help="the .npz to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`grade | head`): stop quietly, as cat does
        # Python would flush stdout again at exit and print the error there: point it at
        # /dev/null first (the recipe in the docs of the signal module, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
