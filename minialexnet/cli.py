"""The command line: ``python -m minialexnet <command> --help``."""

from __future__ import annotations

import argparse
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)
