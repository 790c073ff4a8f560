"""Python source built as code: lines with a depth and the spans of what they compute.

`CodeWriter` writes a recorded program's equations as statements (one `Line` each, with an
indentation depth relative to the block they go in) and records what the statements use: the
constants (``c<N>``) and the computation dtype (``DT``), so that the entry function's prologue
makes exactly those. `Source` assembles the final text from blocks of lines, each put at a
depth, and builds the generated line -> spans map as it goes: no line of generated code is
ever edited, searched or renumbered after it is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
import torch

from . import runtime
from .domains import DomainSites
from .equations import Atom, ConstRef, Eqn, Lit, Region, Var, live_equations, region_uses
from .errors import Span
from .primitives import format_code

if TYPE_CHECKING:
    from .program import Recording

INDENT = "    "

MAX_INLINE_DEPTH = 12
"""Deepest nesting of inlined expressions in one generated statement."""


@attrs.frozen
class Line:
    """One statement: its depth in the block it belongs to, its text, and the spans of the
    primitives it computes (an inlined expression brings its primitives' spans along)."""

    depth: int
    text: str
    spans: tuple[Span, ...] = ()


class Source:
    """The text of a generated module, assembled from lines; ``spans`` maps each line number
    (from 1, as tracebacks count) that computes something to the spans of its primitives."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.spans: dict[int, tuple[Span, ...]] = {}

    def add(self, depth: int, text: str, spans: tuple[Span, ...] = ()) -> None:
        self.lines.append(INDENT * depth + text)
        if spans:
            self.spans[len(self.lines)] = spans

    def extend(self, block: Iterable[Line], depth: int) -> None:
        """Put a block of lines at ``depth`` (each line keeps its depth within the block)."""
        for line in block:
            self.add(depth + line.depth, line.text, line.spans)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


class CodeWriter:
    """Writes equations as Python statements, recording the constants and dtype they use.

    A value used exactly once, by the next statements of the same body and in a template slot
    that appears once, is written inline into its user, as a person writes ``a * b / c``: the
    temporary is then freed as soon as it is consumed, which keeps peak memory and page faults
    at large N where hand-written code has them. Same operations, same order of each: same bits.
    """

    def __init__(self, inline: bool = True, exact_literals: bool = False) -> None:
        self.inline = inline
        # With exact_literals, a literal that float32 cannot hold is a 0-d constant tensor ``L<N>``
        # (ONNX exporters write Python scalars as float32 attributes: a float64 graph would lose digits).
        self.exact_literals = exact_literals
        self.literals: list[float] = []
        self.lines: list[Line] = []
        self.constants: set[int] = set()  # indices of the constants the statements read
        self.uses_dtype = False  # whether a statement reads the computation dtype, DT
        self.bodies = 0
        # var id -> (expression, nesting depth, spans of the equations written into it)
        self.pending: dict[int, tuple[str, int, tuple[Span, ...]]] = {}
        self.consumed: list[Span] = []  # spans of the inlined expressions taken by the statement being written

    def atom(self, a: Atom) -> str:
        """The expression of an equation's argument (an inlined value is taken, once)."""
        if isinstance(a, Var):
            inlined = self.pending.pop(a.id, None)
            if inlined is None:
                return f"v{a.id}"
            self.consumed.extend(inlined[2])
            return f"({inlined[0]})"
        if isinstance(a, Lit):
            if self.exact_literals and float(torch.tensor(a.value, dtype=torch.float32)) != a.value:
                self.literals.append(a.value)
                return f"L{len(self.literals) - 1}"
            return repr(a.value) if a.value == a.value and abs(a.value) != float("inf") else f"float('{a.value}')"
        assert isinstance(a, ConstRef)
        self.constants.add(a.index)
        return f"c{a.index}"

    def statement_spans(self, span: Span | None = None) -> tuple[Span, ...]:
        """The spans of the statement being written: its inlined expressions' and ``span``."""
        spans = tuple(dict.fromkeys(x for x in (*self.consumed, span) if x is not None))
        self.consumed = []
        return spans

    def emit(self, depth: int, text: str, span: Span | None = None) -> None:
        self.lines.append(Line(depth, text, self.statement_spans(span)))

    def equations(self, eqns: list[Eqn], depth: int, keep: set[int] | None = None,
                  result: int | None = None) -> None:
        inline = inlinable(eqns, keep or set(), result) if self.inline else set()
        for e in eqns:
            if e.prim == "%scan":
                self.scan(e, depth)
                continue
            if e.region is not None:
                self.loop(e, depth)
                continue
            nesting = 1 + max((self.pending[a.id][1] for a in e.args if isinstance(a, Var) and a.id in self.pending),
                              default=0)
            args = [self.atom(a) for a in e.args]
            self.uses_dtype = self.uses_dtype or "{dt}" in e.code
            expr = format_code(e.code, args, {**e.params, "dt": "DT"})
            if e.out.id in inline and nesting <= MAX_INLINE_DEPTH:
                self.pending[e.out.id] = (expr, nesting, self.statement_spans(e.span))
            else:
                self.emit(depth, f"v{e.out.id} = {expr}", e.span)

    def loop(self, e: Eqn, depth: int) -> None:
        """A masked loop: its body as a local function, then the call of `_rt.masked_loop`."""
        region = e.region
        assert region is not None
        self.bodies += 1
        name = f"body{self.bodies}"
        params = ", ".join(f"v{v.id}" for v in region.inputs)
        self.emit(depth, f"def {name}({params}):")
        outputs = {a.id for a in region.outputs if isinstance(a, Var)}
        self.equations(live_equations(region.eqns, set(outputs)), depth + 1, keep=outputs)
        outs = [self.atom(a) for a in region.outputs]
        self.emit(depth + 1, f"return {outs[0]}, {outs[1]}, ({''.join(o + ', ' for o in outs[2:])})")
        init = "".join(self.atom(a) + ", " for a in e.args)
        p = e.params
        stack = f", stack={p['stack']!r}" if "stack" in p else ""  # a recursion stack (nc.recursion)
        self.emit(depth, f"v{e.out.id} = _rt.masked_loop({name}, ({init}), {p['ranks']!r}, {p['value_rank']!r}, "
                         f"{p['max_iter']!r}{stack})", e.span)

    def scan(self, e: Eqn, depth: int) -> None:
        """A rolled integration (`nc.scan`): its step as a local function, then a ``for`` loop
        that appends each state to a list, stacked as the unrolled code stacks them."""
        region = e.region
        assert region is not None
        if "trips" in e.params:
            self.rolled_loop(e, region, depth)
            return
        self.bodies += 1
        n = self.bodies
        k, y = (f"v{v.id}" for v in region.inputs)
        self.emit(depth, f"def body{n}({k}, {y}):")
        out = region.outputs[0]
        assert isinstance(out, Var)
        self.equations(live_equations(region.eqns, {out.id}), depth + 1, keep={out.id})
        self.emit(depth + 1, f"return {self.atom(out)}")
        prefix = [self.atom(a) for a in e.args]
        p = e.params
        self.emit(depth, f"states{n} = [{', '.join(prefix)}]")
        self.emit(depth, f"for k{n} in range({p['start']}, {p['start'] + p['steps']}):  # {p['steps']} steps")
        self.emit(depth + 1, f"states{n}.append(body{n}(float(k{n}), states{n}[-1]))")
        self.emit(depth, f"v{e.out.id} = _rt.stack_axis({p['axis']}, *states{n})", e.span)

    def rolled_loop(self, e: Eqn, region: Region, depth: int) -> None:
        """A rolled constant-trip loop (`nc.rollloop`): one iteration as a local function, then a
        ``for`` loop over the trips; counters are ``float(a + s*k)``, varying constants rows ``c[k]``."""
        self.bodies += 1
        n = self.bodies
        params = ", ".join(f"v{v.id}" for v in region.inputs)
        self.emit(depth, f"def body{n}({params}):")
        outputs = {a.id for a in region.outputs if isinstance(a, Var)}
        self.equations(live_equations(region.eqns, set(outputs)), depth + 1, keep=outputs)
        self.emit(depth + 1, f"return ({''.join(self.atom(a) + ', ' for a in region.outputs)})")
        p = e.params
        nstate = p["state"]
        init = [self.atom(a) for a in e.args]
        slots = [f"float({a} + {s} * k{n})" for a, s in p["lits"]] + [f"{c}[k{n}]" for c in init[nstate:]]
        self.emit(depth, f"state{n} = ({''.join(a + ', ' for a in init[:nstate])})")
        self.emit(depth, f"for k{n} in range({p['trips']}):  # {p['trips']} trips")
        self.emit(depth + 1, f"state{n} = body{n}({''.join(a + ', ' for a in slots)}*state{n})")
        self.emit(depth, f"v{e.out.id} = state{n}", e.span)

    def result(self, program: Recording, needed: set[int]) -> tuple[str, tuple[Span, ...]]:
        """The expression of the program's output and the spans it computes (``needed``: the
        ids of the values the output depends on).

        A result that does not depend on every input gets their batch axes, as vmap would."""
        out = program.output
        expr = self.atom(out)  # an inlined result brings its spans to the result's line
        if not isinstance(out, Var) or not needed >= {v.id for v in program.inputs}:
            ranks = tuple(v.rank for v in program.inputs)
            args = "".join(f"v{v.id}, " for v in program.inputs)
            rank = len(out.pshape) if isinstance(out, (Var, ConstRef)) else 0
            expr = f"_rt.expand_batch({expr}, ({args}), {ranks!r}, {rank})"
        return expr, self.statement_spans()


def template_namespace(program: Recording) -> dict[str, Any]:
    """What the templates refer to: ``torch``, the runtime helpers (``_rt``), the learned
    components (``X0``, ``X1``, ...) and the domain checks (``DOMAIN``)."""
    ns: dict[str, Any] = {"torch": torch, "_rt": runtime}
    ns.update({f"X{i}": module for i, module in enumerate(program.externals)})
    if program.domain_sites:
        ns["DOMAIN"] = DomainSites(program.domain_sites)
    return ns


def inlinable(eqns: list[Eqn], keep: set[int], result: int | None = None) -> set[int]:
    """Ids of values that may be written inline: used once, in a slot their user writes once
    (``result``, the returned value, counts as one such use; ``keep`` as several)."""
    uses: dict[int, int] = {} if result is None else {result: 1}
    for e in eqns:
        if e.region is not None:
            for v in region_uses(e.region):  # read by a loop body's closure: keep the name
                uses[v] = uses.get(v, 0) + 2
        for k, a in enumerate(e.args):
            if isinstance(a, Var):
                once = e.region is None and ("{*}" in e.code or e.code.count(f"{{{k}}}") == 1)
                uses[a.id] = uses.get(a.id, 0) + (1 if once else 2)
    for v in keep:
        uses[v] = uses.get(v, 0) + 2
    return {e.out.id for e in eqns if e.region is None and not e.params.get("effect") and uses.get(e.out.id) == 1}
