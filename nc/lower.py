"""Lowering a recorded `Program` to a plain Python function of tensors.

The program becomes straight-line Python source, one line per equation (as torch.fx writes
``GraphModule.code``), compiled once. The generated names are ``v<N>`` and ``c<N>`` only:
no text of the user's program ever reaches the generated source, so a name, number or
comment in a program cannot inject code. Dead equations are dropped first; that changes no bit.
"""

from __future__ import annotations

import itertools
import linecache
import re
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch

from . import runtime
from .errors import NCError, Span
from .primitives import format_code
from .program import Atom, ConstRef, Eqn, Lit, Program, Var, live_equations, region_uses


@attrs.frozen
class Lowered:
    fn: Callable[..., torch.Tensor]
    source: str
    line_spans: dict[int, tuple[Span, ...]]  # generated line -> spans of the equations written there
    namespace: dict[str, Any]  # the generated code's globals (the owner sets SLOW for an entry)
    program: Program | None = None  # what was lowered (relowered one equation a line to locate a failure)
    inline: bool = True


MISSING = object()
"""Default of an entry function's parameters: tells an argument not given from any value."""

MAX_INLINE_DEPTH = 12
"""Deepest nesting of inlined expressions in one generated statement."""


class CodeWriter:
    """Writes equations as Python statements.

    A value used exactly once, by the next statements of the same body and in a template slot
    that appears once, is written inline into its user, as a person writes ``a * b / c``: the
    temporary is then freed as soon as it is consumed, which keeps peak memory and page faults
    at large N where hand-written code has them. Same operations, same order of each: same bits.
    """

    def __init__(self, program: Program, inline: bool = True) -> None:
        self.program = program
        self.inline = inline
        self.lines: list[str] = []
        self.spans: dict[int, tuple[Any, ...]] = {}
        self.bodies = 0
        # var id -> (expression, nesting depth, spans of the equations written into it)
        self.pending: dict[int, tuple[str, int, tuple[Any, ...]]] = {}
        self.consumed: list[Any] = []  # spans of the inlined expressions taken by the statement being written

    def atom(self, a: Atom) -> str:
        if isinstance(a, Var):
            inlined = self.pending.pop(a.id, None)
            if inlined is None:
                return f"v{a.id}"
            self.consumed.extend(inlined[2])
            return f"({inlined[0]})"
        if isinstance(a, Lit):
            return repr(a.value) if a.value == a.value and abs(a.value) != float("inf") else f"float('{a.value}')"
        return f"c{a.index}"

    def emit(self, indent: str, text: str, span: Any = None) -> None:
        """Write one line; it is mapped to ``span`` and the spans of the expressions inlined in it."""
        self.lines.append(indent + text)
        spans = tuple(dict.fromkeys(x for x in (*self.consumed, span) if x is not None))
        self.consumed = []
        if spans:
            self.spans[len(self.lines) + 1] = spans  # +1: the def line precedes the body

    def equations(self, eqns: list[Eqn], indent: str, keep: set[int] | None = None,
                  result: int | None = None) -> None:
        inline = inlinable(eqns, keep or set(), result) if self.inline else set()
        for e in eqns:
            if e.region is not None:
                self.loop(e, indent)
                continue
            depth = 1 + max((self.pending[a.id][1] for a in e.args if isinstance(a, Var) and a.id in self.pending),
                            default=0)
            args = [self.atom(a) for a in e.args]
            expr = format_code(e.code, args, {**e.params, "dt": "DT"})
            if e.out.id in inline and depth <= MAX_INLINE_DEPTH:
                spans = (*self.consumed, e.span) if e.span is not None else tuple(self.consumed)
                self.consumed = []
                self.pending[e.out.id] = (expr, depth, spans)
            else:
                self.emit(indent, f"v{e.out.id} = {expr}", e.span)


    def loop(self, e: Eqn, indent: str) -> None:
        region = e.region
        assert region is not None
        self.bodies += 1
        name = f"body{self.bodies}"
        params = ", ".join(f"v{v.id}" for v in region.inputs)
        self.emit(indent, f"def {name}({params}):")
        outputs = {a.id for a in region.outputs if isinstance(a, Var)}
        self.equations(live_equations(region.eqns, set(outputs)), indent + "    ", keep=outputs)
        outs = [self.atom(a) for a in region.outputs]
        self.emit(indent + "    ", f"return {outs[0]}, {outs[1]}, ({''.join(o + ', ' for o in outs[2:])})")
        init = "".join(self.atom(a) + ", " for a in e.args)
        p = e.params
        self.emit(indent, f"v{e.out.id} = _rt.masked_loop({name}, ({init}), {p['ranks']!r}, {p['value_rank']!r}, "
                          f"{p['max_iter']!r})", e.span)


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


_names = itertools.count()


def lower(program: Program, *, generic: bool = False, inline: bool = True) -> Lowered:
    """Compile ``program`` to a Python function of its inputs (in order).

    A *generic* function takes its dtype and device from the inputs at every call (constants
    come from a per-dtype cache), so one function serves every signature with the same ranks;
    it first checks each input's rank and raises `RankMismatch` if one is too small.
    """
    w = CodeWriter(program, inline)
    out = program.output
    needed = {out.id} if isinstance(out, Var) else set()
    eqns = live_equations(program.eqns, needed)
    w.equations(eqns, "    ", result=out.id if isinstance(out, Var) else None)
    result = w.atom(out)  # an inlined result brings its spans to the return line
    used = needed & {v.id for v in program.inputs}
    if not isinstance(out, Var) or len(used) < len(program.inputs):
        # The result does not depend on every input: give it their batch axes, as vmap would.
        ranks = tuple(v.rank for v in program.inputs)
        args = "".join(f"v{v.id}, " for v in program.inputs)
        rank = len(out.pshape) if isinstance(out, (Var, ConstRef)) else 0
        result = f"_rt.expand_batch({result}, ({args}), {ranks!r}, {rank})"
    w.emit("    ", f"return {result}")
    body = "\n".join(w.lines)
    prologue = generic_prologue(program, body) if generic else []
    params = [f"v{v.id}" for v in program.inputs]
    if generic:
        head, body = entry_function(params, prologue, w.lines)
    else:
        head = [f"def nc_program({', '.join(params)}):"]
        body = "".join(line + "\n" for line in w.lines)
    shift = len(head) - 1 + (len(prologue) if generic else 0)
    w.spans = {k + shift: v for k, v in w.spans.items()}  # keep the line -> span map right
    source = "".join(line + "\n" for line in head) + body
    namespace = globals_for(program, generic)
    filename = f"<nc-generated-{next(_names)}>"  # a counter: unique for the process's lifetime
    code = compile(source, filename, "exec")
    exec(code, namespace)  # noqa: S102 - source built above from nc's own templates and names
    fn = namespace["nc_program"]
    # Registered so that tracebacks and inspect can show the generated lines, and released with
    # the function (linecache would otherwise keep every program's source forever).
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    weakref.finalize(fn, linecache.cache.pop, filename, None)
    return Lowered(fn, source, w.spans, namespace, program if not generic else None, inline)


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


def entry_function(params: list[str], prologue: list[str], lines: list[str]) -> tuple[list[str], str]:
    """The generic function as a complete entry point: tensors in order run the body directly;
    anything else (keywords, missing or non-tensor arguments, a rank check or an operation that
    fails, a non-tensor result) goes to ``SLOW``, the checked path, which converts or explains."""
    given = "(" + "".join(p + ", " for p in params) + "*extra)"
    if params:
        head = [f"def nc_program({', '.join(p + '=MISSING' for p in params)}, /, *extra, **kw):",
                f"    if kw or extra or {params[-1]} is MISSING:"]
    else:
        head = ["def nc_program(*args, **kw):", "    if args or kw:"]
        given = "args"
    head += [f"        return SLOW({given}, kw)", "    try:"]
    body_lines = [line.replace("    ", "        ", 1) for line in prologue]
    body_lines += ["    " + line for line in lines[:-1]]
    body_lines.append("    " + lines[-1].replace("return ", "out = ", 1))
    body_lines += ["    except NCError:", "        raise",
                   "    except Exception:", f"        return SLOW({given}, kw)",
                   "    if out.__class__ is TENSOR:", "        return out",
                   f"    return SLOW({given}, kw)"]
    return head, "".join(line + "\n" for line in body_lines)


def generic_prologue(program: Program, body: str) -> list[str]:
    lines = []
    for v in program.inputs:
        if v.rank:
            lines.append(f"    if v{v.id}.dim() < {v.rank}: raise _rt.RankMismatch()")
    uses_consts = bool(re.search(r"\bc\d+\b", body))
    if uses_consts or "DT" in body:
        args = "".join(f"v{v.id}, " for v in program.inputs)
        lines.append(f"    DT, DEV = _rt.dtype_device(({args}))")
    if uses_consts:
        names = "".join(f"c{i}, " for i in range(len(program.constants)))
        lines.append(f"    {names}= CONSTANTS(DT, DEV)")
    return lines


def globals_for(program: Program, generic: bool) -> dict[str, Any]:
    ns: dict[str, Any] = {"torch": torch, "_rt": runtime}
    ns.update({f"X{i}": module for i, module in enumerate(program.externals)})
    if program.domain_sites:
        from .domains import DomainSites

        ns["DOMAIN"] = DomainSites(program.domain_sites)
    if generic:
        ns["CONSTANTS"] = runtime.ConstantCache(program.constants)
        ns.update(MISSING=MISSING, TENSOR=torch.Tensor, NCError=NCError, SLOW=None)
        return ns
    ns["DT"] = program.dtype
    for i, c in enumerate(program.constants):
        if c.dtype == torch.bool:
            ns[f"c{i}"] = c.to(program.device)
        else:
            ns[f"c{i}"] = c.to(dtype=program.dtype, device=program.device)
    return ns
