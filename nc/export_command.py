"""``nc export FILE --format onnx|pt2 -o OUT [--shape NAME=D1,D2 ...] [--dtype float64]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from .api import compile_fn
from .cli_input import UsageError, read_file
from .export import to_onnx, to_pt2

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``nc export`` command."""
    p = sub.add_parser("export", help="export FILE's program to ONNX or a torch.export .pt2 archive")
    p.add_argument("file")
    p.add_argument("--format", choices=("onnx", "pt2"), default="onnx")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D1,D2",
                   help="per-example shape of a vector or matrix input, e.g. r=3 or M=3,3 (repeatable)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.set_defaults(run=run)


def sizes(items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``NAME=D1,D2`` items as per-example shapes (every size given: export fixes them)."""
    out = {}
    for item in items:
        name, eq, dims = item.partition("=")
        try:
            out[name] = tuple(int(d) for d in dims.split(",") if d)
        except ValueError:
            eq = ""
        if not eq or not name:
            raise UsageError(f"bad --shape {item!r}: use NAME=D1,D2 with integer sizes")
    return out


def run(args: argparse.Namespace) -> int:
    shapes = sizes(args.shape)
    fn = compile_fn(read_file(args.file), shapes=shapes or None, name=args.file)
    dtype = DTYPES[args.dtype]
    if args.format == "onnx":
        to_onnx(fn, shapes=shapes, dtype=dtype).save(args.output)
    else:
        torch.export.save(to_pt2(fn, shapes=shapes, dtype=dtype), args.output)
    print(f"wrote {args.output}: inputs ({', '.join(fn.inputs)}), each with a leading batch axis of any size")
    return 0
