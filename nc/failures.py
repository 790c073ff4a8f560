"""Failures reported as `NCError`s: Python's recursion limit while compiling, and a torch error
raised inside generated code, at the span of the primitive that failed."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from .errors import LimitError, NCError, ShapeError
from .lower import Lowered, lower

RECURSION_LIMIT = 20_000

# nc's tree walks recurse as deep as a program nests (bounded by the reader's MAX_DEPTH and
# MAX_CALL_DEPTH, a few frames per level). The limit is raised once, here, and never lowered:
# saving and restoring it around each compile raced between threads (a thread lowered it while
# another was deep inside a compile, which overflowed or raised spurious errors).
if sys.getrecursionlimit() < RECURSION_LIMIT:
    sys.setrecursionlimit(RECURSION_LIMIT)


@contextmanager
def deep_recursion() -> Iterator[None]:
    """Report Python's recursion limit, should a tree walk still reach it, as a `LimitError`.

    It changes no process-wide state (recursion limit, garbage collector), so compiles in
    several threads at once do not interfere."""
    try:
        yield
    except RecursionError:
        raise LimitError("the program nests definitions, calls or expressions too deeply to compile",
                         hint="nc follows each definition and function call into its body; chains of "
                              "thousands of them are beyond its limit: merge some, or use loops") from None


def runtime_error(e: BaseException, entry: Lowered, values: Sequence[torch.Tensor]) -> NCError:
    """An error raised inside generated code, at the span of the primitive that failed."""
    span = locate_failure(e, entry, values)
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return ShapeError(f"this operation failed when the program ran: {first}", span)


def locate_failure(e: BaseException, entry: Lowered, values: Sequence[torch.Tensor]) -> Any:
    """The span of the primitive whose operation raised ``e`` inside ``entry``'s generated code.

    The innermost generated line in the traceback names the statement; when that statement
    holds several inlined primitives, the program is lowered again with one equation per line
    and run on the same inputs (without gradients), whose failing line names exactly one.
    """
    spans = failing_spans(e, entry)
    if len(spans) <= 1 or not entry.inline or entry.program is None:
        return spans[-1] if spans else None
    plain = lower(entry.program, inline=False)
    try:
        with torch.no_grad():
            plain.fn(*values)
    except Exception as again:  # noqa: BLE001 - the same failure, now on a line of its own
        exact = failing_spans(again, plain)
        if len(exact) == 1:
            return exact[0]
    return spans[-1]  # not reproduced: the statement's outermost primitive


def failing_spans(e: BaseException, entry: Lowered) -> tuple[Any, ...]:
    """Spans of the innermost generated line in ``e``'s traceback."""
    spans: tuple[Any, ...] = ()
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith("<nc-generated"):
            spans = entry.line_spans.get(tb.tb_lineno, spans)
        tb = tb.tb_next
    return spans
