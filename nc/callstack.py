"""The call stack of the tracer: functions being inlined, closures, and finished calls (the memo).

Function calls are inlined. `CallStack` knows which functions are being traced (to bound
nesting and static recursion), the closure of each local function, and the value of every
finished call whose arguments are traced or small constants: a function is pure, so the same call
in the same place gives the same value, which keeps fan-out such as ``(+ (f a) (f a))`` linear
instead of doubling per level.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import ir
from .builder import Limits
from .errors import LimitError, Span
from .program import Var
from .values import Ctx, Env, Value

MemoKey = tuple[Any, ...]


class CallStack:
    """Functions being inlined (with their entry context), closures and memoised calls."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.active: list[tuple[str, Ctx]] = []
        self.fn_envs: dict[str, Env] = {}
        self.top_env = Env()  # the closure of every top-level function (one object: memo keys use its id)
        self.memo: dict[MemoKey, tuple[Value, Env]] = {}

    def closure(self, fn: ir.Function) -> Env:
        return self.fn_envs.get(fn.key) or self.top_env

    def define_local(self, fns: tuple[ir.Function, ...], env: Env) -> None:
        """Local (letrec) functions close over ``env``."""
        for fn in fns:
            self.fn_envs[fn.key] = env

    def depth(self, fn: ir.Function, ctx: Ctx) -> tuple[int, bool]:
        """How often ``fn`` is being traced already, and whether one of those entered another context."""
        entries = [c for key, c in self.active if key == fn.key]
        return len(entries), any(c is not ctx for c in entries)

    def check_nesting(self, span: Span | None) -> None:
        if len(self.active) >= self.limits.call_depth:
            raise LimitError(f"calls nest more than {self.limits.call_depth} deep here (each function call is "
                             "traced into its caller)", span, hint="shorten the chain of calls, or use a loop")

    @contextmanager
    def entered(self, fn: ir.Function, ctx: Ctx) -> Iterator[None]:
        self.active.append((fn.key, ctx))
        try:
            yield
        finally:
            self.active.pop()

    def memo_key(self, fn: ir.Function, closure: Env, ctx: Ctx, eqns: list[Any], args: list[Value]) -> MemoKey | None:
        """The memo key of a call: traced arguments by identity, small constants by value (bits,
        so -0.0 and 0.0 differ), in the same context and equation list; None if not memoisable."""
        parts: list[Any] = [fn.key, id(closure), ctx.ident, id(eqns)]
        budget = self.limits.memo_elements
        for a in args:
            if isinstance(a, Var):
                parts.append(("v", a.id))
                continue
            budget -= a.numel()
            if budget < 0:
                return None
            parts.append(("c", a.dtype, tuple(a.shape), a.detach().cpu().numpy().tobytes()))
        return tuple(parts)

    def remember(self, key: MemoKey | None, value: Value, closure: Env) -> None:
        if key is not None:
            self.memo[key] = (value, closure)  # the closure is kept alive so that its id stays unique

    def recall(self, key: MemoKey | None) -> Value | None:
        hit = self.memo.get(key) if key is not None else None
        return hit[0] if hit is not None else None
