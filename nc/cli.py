"""The ``nc`` command line: a thin argparse front end over the library.

    nc demo                      fit a built-in physics program's unknown constant
    nc show FILE [--code|--latex] the recorded program (the generated Python, the formula) of FILE
    nc grammar [--format F]      the language's grammar (lark or gbnf)
    nc primitives                the table of primitives
    nc check FILE [--json]       all diagnostics of FILE without running it
    nc fit FILE DATA.csv ...     fit the program's constants to a CSV file (see nc.fit_command)
    nc discover DATA.csv ...     discover a sparse right-hand side (see nc.discover)
    nc reproduce [EXPERIMENT ...] the paper's experiments with statistics (see nc.experiments)

Exit status: 0 success; 1 errors in the program (or in fitting it); 2 wrong usage: a bad
argument, or an input file that is missing, not UTF-8 text, or (``nc fit``) not a CSV of finite
numbers as `nc.cli_input` describes. Every error is a one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .api import compile_fn
from .cli_input import UsageError, read_file
from .demo import run
from .diagnostics import check
from .discover import add_parser as add_discover_parser
from .errors import NCError
from .experiments.runner import add_parser as add_reproduce_parser
from .export_command import add_parser as add_export_parser
from .fit_command import add_parser as add_fit_parser
from .grammar import add_parser as add_grammar_parser
from .primitives import table_rows
from .symbolic import latex_listing

__all__ = ["UsageError", "build_parser", "main", "read_file"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except NCError as e:
        print(str(e), file=sys.stderr)
        return 1
    except (OSError, UsageError) as e:
        print(f"nc: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nc", description="The neural compiler: nc programs to PyTorch.")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="fit a built-in physics program's unknown constant to generated data")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--noise", type=float, default=0.0, help="relative Gaussian noise on the data")
    demo.set_defaults(run=cmd_demo)
    show = sub.add_parser("show", help="print the recorded program of FILE")
    show.add_argument("file")
    show.add_argument("--code", action="store_true", help="print the generated Python instead")
    show.add_argument("--latex", action="store_true", help="print the formula as LaTeX (needs sympy)")
    show.add_argument("--shape", action="append", default=[], metavar="NAME=D1,D2",
                      help="per-example shape of an input, e.g. r=3 or M=3,3 (repeatable)")
    show.set_defaults(run=cmd_show)
    prims = sub.add_parser("primitives", help="print the table of primitives")
    prims.set_defaults(run=cmd_primitives)
    check = sub.add_parser("check", help="report the diagnostics of FILE without running it")
    check.add_argument("file")
    check.add_argument("--json", action="store_true", help="print the diagnostics as JSON")
    check.add_argument("--shape", action="append", default=[], metavar="NAME=D1,D2")
    check.set_defaults(run=cmd_check)
    add_fit_parser(sub)
    add_grammar_parser(sub)
    add_export_parser(sub)
    add_discover_parser(sub)
    add_reproduce_parser(sub)
    return parser


def parse_shapes(items: Sequence[str]) -> dict[str, tuple[int | None, ...]]:
    out: dict[str, tuple[int | None, ...]] = {}
    for item in items:
        name, _, dims = item.partition("=")
        try:
            out[name] = tuple(None if d in ("?", "None") else int(d) for d in dims.split(",") if d)
        except ValueError:
            raise UsageError(f"bad --shape {item!r}: use NAME=D1,D2 with integers or ?") from None
    return out


def cmd_demo(args: argparse.Namespace) -> int:

    run(seed=args.seed, noise=args.noise)
    return 0


def cmd_show(args: argparse.Namespace) -> int:

    if args.latex:

        print(latex_listing(read_file(args.file), name=args.file, shapes=parse_shapes(args.shape)))
        return 0
    f = compile_fn(read_file(args.file), shapes=parse_shapes(args.shape), name=args.file)
    print(f.code() if args.code else f.program().listing())
    return 0


def cmd_primitives(args: argparse.Namespace) -> int:

    rows = table_rows()
    width = max(len(r.name + "".join(" / " + a for a in r.aliases)) for r in rows)
    print(f"{'name':<{width}}  {'arity':<6} {'family':<11} {'grad':<4}  torch expression  -- doc")
    for r in rows:
        names = r.name + "".join(" / " + a for a in r.aliases)
        code = r.code if isinstance(r.code, str) else "(depends on shapes)"
        extra = "".join(f" | {n} args: {c}" for n, c in r.by_arity.items())
        print(f"{names:<{width}}  {r.arity_text():<6} {r.family:<11} {'yes' if r.differentiable else 'no':<4}  "
              f"{code or '(a constant)'}{extra}  -- {r.doc}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:

    problems = check(read_file(args.file), name=args.file, shapes=parse_shapes(args.shape))
    if args.json:
        print(json.dumps([p.to_dict() for p in problems], indent=2))
    else:
        for p in problems:
            print(str(p))
        print(f"{args.file}: {len(problems)} error{'s' * (len(problems) != 1)}")
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
