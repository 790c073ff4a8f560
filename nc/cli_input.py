"""What the command line reads: program files (UTF-8 text) and CSV data for ``nc fit``.

Every problem with a file is a `UsageError` whose message names the file and, where there is
one, the line, row and column; the command line prints it and exits with status 2 (the command
could not read what it was given), like a missing file.

CSV rules (``nc fit``): UTF-8 (a leading byte-order mark is dropped), comma-separated, a header
row of column names, then one or more data rows. Names are kept exactly as written except for
surrounding spaces, which are dropped from names and cells alike (``m1, m2`` is the same as
``m1,m2``); a name may not be empty or repeated. Every cell must be a finite decimal number
(``1``, ``-2.5``, ``3e-4``): a blank cell, ``nan``, ``inf``, ``1e999`` (too large for a float),
``0x10`` or any text is an error naming the row and column. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import io
import math
import re
import sys

import numpy as np

__all__ = ["UsageError", "decode", "read_csv", "read_file"]

# ASCII digits only: Python's float() also takes "1_000", "infinity" and non-ASCII digits.
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


class UsageError(Exception):
    """A command-line argument or an input file is malformed (exit status 2)."""


def decode(data: bytes, path: str) -> str:
    """``data`` as UTF-8 text (without a leading byte-order mark), or a UsageError naming the
    line and column of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        column = e.start - (before.rfind(b"\n") + 1) + 1
        raise UsageError(f"{path}:{line}:{column}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
                         "nc reads files as UTF-8") from None


def read_file(path: str) -> str:
    """The text of ``path`` (``-``: standard input), as UTF-8."""
    if path == "-":
        return decode(sys.stdin.buffer.read(), "<stdin>")
    with open(path, "rb") as f:
        return decode(f.read(), path)


def read_csv(path: str) -> dict[str, np.ndarray]:
    """Column name -> float64 values of a CSV file, by the rules in this module's docstring."""
    rows = csv.reader(io.StringIO(read_file(path), newline=""))
    header: list[str] | None = None
    columns: list[list[float]] = []
    for cells in rows:
        line = rows.line_num
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # a blank line
        cells = [c.strip() for c in cells]
        if header is None:
            header = _header(cells, path, line)
            columns = [[] for _ in header]
            continue
        if len(cells) != len(header):
            raise UsageError(f"{path}:{line}: row {len(columns[0]) + 1} has {len(cells)} cells, the header "
                             f"has {len(header)} ({', '.join(header)})")
        for name, cell, column in zip(header, cells, columns):
            column.append(_number(cell, path, line, len(column) + 1, name))
    if header is None:
        raise UsageError(f"{path}: the file is empty; expected a header row of column names and data rows")
    if not columns[0]:
        raise UsageError(f"{path}: no data rows after the header ({', '.join(header)})")
    return {name: np.asarray(column, dtype=np.float64) for name, column in zip(header, columns)}


def _header(names: list[str], path: str, line: int) -> list[str]:
    if len(names) == 1:
        for sep in (";", "\t", "|"):
            if sep in names[0]:
                raise UsageError(f"{path}:{line}: the header {names[0]!r} is one column: columns must be "
                                 f"separated by commas, not {sep!r}")
    for i, name in enumerate(names):
        if not name:
            raise UsageError(f"{path}:{line}: column {i + 1} of the header has no name")
        if name in names[:i]:
            raise UsageError(f"{path}:{line}: column name {name!r} appears twice in the header")
    return names


def _number(cell: str, path: str, line: int, row: int, name: str) -> float:
    value = float(cell) if NUMBER.fullmatch(cell) else math.nan
    if not math.isfinite(value):
        what = "is blank" if not cell else f"{cell!r} is not a finite number"
        raise UsageError(f"{path}:{line}: row {row}, column {name!r}: {what}")
    return value
