"""The command line: ``python -m minialexnet <command> --help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .model import VARIANTS


def cmd_summary(args: argparse.Namespace) -> int:
    from .accounting import summarize
    from .model import build_alexnet

    print(summarize(build_alexnet(args.variant)).table())
    return 0


def cmd_tour(args: argparse.Namespace) -> int:
    from .tour import run_tour

    return run_tour()


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    return run_bench(args.batch_sizes, repeats=args.repeats, compare_torch=not args.no_torch)


def cmd_exercises(args: argparse.Namespace) -> int:
    from .exercises import write_student_copy

    try:
        regions = write_student_copy(args.outdir, split_layers(args.layers))
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 2
    print(f"wrote a student copy to {args.outdir}: {len(regions)} regions replaced by hints")
    for region in regions:
        print(f"  {region.tag:<12} {region.path.name}:{region.begin + 1}  {region.task}")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from .grade import grade, grade_table

    try:
        grades = grade(split_layers(args.layers))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(grade_table(grades))
    return 0 if all(g.passed for g in grades) else 1


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

    p = commands.add_parser("bench", help="time the ungrouped AlexNet on the CPU (float32)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32], metavar="N")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.set_defaults(func=cmd_bench)

    p = commands.add_parser("exercises", help="write a student copy with the layers blanked out")
    p.add_argument("outdir", help="an empty or new folder for the student copy")
    p.add_argument("--layers", help="comma-separated exercise tags (default: all), e.g. conv,pool")
    p.set_defaults(func=cmd_exercises)

    p = commands.add_parser(
        "grade", help="grade each layer's forward and backward (exit 0: all pass)"
    )
    p.add_argument("--layers", help="comma-separated layers (default: all), e.g. conv,lrn")
    p.set_defaults(func=cmd_grade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)
