"""The inputs of a compiled program and their per-example ranks.

Each input's rank is its declared shape's length, else 0, raised when the tracer finds the
program using the input as a vector or matrix (it raises `Promote`, and the trace is run
again): ranks are inferred by tracing, with at most `MAX_RETRACE` retraces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from .errors import CallError, ShapeError, Span
from .options import MAX_RANK
from .shapes import Shape
from .suggest import closest
from .trace import Promote

MAX_RETRACE = 64

T = TypeVar("T")


class InputShapes:
    """Names, spans, declared per-example shapes and current ranks of a program's inputs."""

    def __init__(self, names: tuple[str, ...], spans: Mapping[str, Span | None], declared: Mapping[str, Shape]):
        for name in declared:
            if name not in names:
                near = closest(name, names)
                raise CallError(f"shapes= names '{name}', which is not an input of this program "
                                f"(inputs: {', '.join(names) or 'none'})",
                                hint=f"did you mean '{near[0]}'?" if near else None)
        self.names = names
        self.spans = dict(spans)
        self.declared = dict(declared)
        self.ranks: dict[str, int] = {n: len(self.declared.get(n, ())) for n in names}

    def open_shapes(self) -> dict[str, Shape]:
        """Per-example shapes with the sizes not declared left open (None)."""
        return {n: self.declared.get(n, (None,) * self.ranks[n]) for n in self.names}

    def sized(self) -> bool:
        """Whether some declared size is fixed (then no one function serves every call)."""
        return any(d is not None for shape in self.declared.values() for d in shape)

    def promote(self, p: Promote) -> None:
        """Raise the ranks of the inputs the tracer found used with more axes."""
        for n in p.names:
            self.ranks[n] = max(self.ranks[n], p.rank)
            if self.ranks[n] > MAX_RANK:
                raise ShapeError(f"input '{n}' would need more than {MAX_RANK} axes per example", self.spans[n])

    def settle(self, trace: Callable[[], T]) -> T:
        """Run ``trace`` until the ranks stop rising; its result."""
        for _ in range(MAX_RETRACE):
            try:
                return trace()
            except Promote as p:
                self.promote(p)
        raise CallError("could not settle the per-example ranks of the inputs")  # pragma: no cover

    def rank_hint(self, name: str, rank: int) -> str:
        if name in self.declared:
            return f"declared by shapes={{'{name}': {self.declared[name]}}}"
        kind = {1: "a vector", 2: "a matrix"}.get(rank, f"rank {rank}")
        return f"the program uses '{name}' as {kind}"
