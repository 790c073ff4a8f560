"""Rolling constant-trip loops: a long run of identical iterations becomes one ``%scan`` equation.

A `loop` (or a tail-recursive function, or a tail group) whose exit is decided by constants is
traced iteration by iteration, as before: constants fold exactly as they always did. `Roller`
watches the iterations traced at the top level with a traced state and compares each with the
first of the current run: the same equations on the state in the same order, reading the same
outside values and the same constants, except constants that change from iteration to iteration
in a way the generated loop reproduces exactly:

- Python numbers that count by a whole step (a loop counter and whole numbers computed from it),
  written ``float(a + s*k)`` at run time, as the unrolled code writes ``a + s*k`` literally;
- constant tensors, stacked into one constant and indexed by the trip.

When such a run holds more than `nc.scan.ROLL_MIN` iterations, its equations are replaced by one
``%scan`` equation in loop mode (``trips=N``) whose region is the run's first iteration, and the
state after the run is taken from its value with ``%item``. The generated loop runs the same
operations on the same values in the same order, so values and gradients keep their bits, and the
code no longer grows with the trip count. Anything else (a run that changes shape, a body with
its own loop, an iteration reading an earlier one's values) stays unrolled, as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .errors import Span
from .primitives import code_of
from .program import ConstRef, Eqn, Lit, Region, Var, region_uses
from .scan import ROLL_MIN
from .tracer import Tracer
from .values import Value

EXACT = 2.0 ** 53
"""Whole numbers beyond this are not all floats: a counter there is not rolled."""


class Slot:
    """One constant argument of the run's first iteration, followed along the run."""

    def __init__(self, first: Lit | ConstRef) -> None:
        self.first = first
        self.step: float | None = None  # a Lit's step per trip, once a second trip is seen
        self.consts: list[ConstRef] = [first] if isinstance(first, ConstRef) else []
        self.varies = False


class Run:
    """Consecutive iterations with the same equations (see the module docstring)."""

    def __init__(self, start: int, positions: tuple[int, ...], ins: tuple[Var, ...], body: list[Eqn],
                 outs: tuple[Any, ...]) -> None:
        self.start = start  # where the run's first iteration began recording in the top-level list
        self.positions = positions  # which loop variables are traced (the others are constants)
        self.ins, self.body, self.outs = ins, body, outs
        self.slots: dict[tuple[int, int], Slot] = {
            (i, j): Slot(a) for i, e in enumerate(body) for j, a in enumerate(e.args) if isinstance(a, (Lit, ConstRef))}
        self.trips = 1
        self.removed: set[int] = {e.out.id for e in body}


class Roller:
    """Follows one loop's iterations at the top level and rolls long runs (see the module docstring)."""

    def __init__(self, tr: Tracer, span: Span | None) -> None:
        self.tr = tr
        self.build = build = tr.build
        self.constants = build.constants
        self.span = span  # the loop's: the rolled equation's
        self.run: Run | None = None

    def iteration(self, mark: int, state: Sequence[Value], nxt: Sequence[Value] | None,
                  value: Value | None = None) -> None:
        """After tracing one iteration that began recording at ``mark`` with ``state``: ``nxt``
        is its next state, or None when it exited with ``value`` (or did not decide: the rest
        is then a masked loop)."""
        positions = tuple(i for i, v in enumerate(state) if isinstance(v, Var))
        ins = tuple(v for v in state if isinstance(v, Var))
        body = self.build.eqns[mark:]
        outs = None if nxt is None else tuple(nxt[i] for i in positions)
        shaped = (outs is not None and bool(positions) and all(e.region is None for e in body)
                  and all(isinstance(v, Var) == (i in positions) for i, v in enumerate(nxt or ())))
        run = self.run
        if run is not None and shaped and positions == run.positions:
            assert outs is not None
            if self.extend(run, ins, body, outs):
                return
        self.finish(mark, ins, body, nxt, value)
        if shaped:
            assert outs is not None
            self.run = Run(mark, positions, ins, body, outs)

    def extend(self, run: Run, ins: tuple[Var, ...], body: list[Eqn], outs: tuple[Any, ...]) -> bool:
        """Whether this iteration repeats the run's first (it then joins the run)."""
        if len(body) != len(run.body):
            return False
        same = {a.id: b.id for a, b in zip(run.ins, ins)}
        seen: list[tuple[Slot, Lit | ConstRef]] = []
        for i, (t, e) in enumerate(zip(run.body, body)):
            if (t.prim != e.prim or t.code != e.code or t.params != e.params or e.region is not None
                    or t.out.pshape != e.out.pshape or t.out.mask != e.out.mask or len(t.args) != len(e.args)):
                return False
            for j, (a, b) in enumerate(zip(t.args, e.args)):
                if isinstance(a, Var):
                    if not isinstance(b, Var) or same.get(a.id, a.id) != b.id:
                        return False
                elif type(a) is not type(b):
                    return False
                else:
                    seen.append((run.slots[(i, j)], b))  # type: ignore[arg-type]
            same[t.out.id] = e.out.id
        for a, b in zip(run.outs, outs):
            if not isinstance(b, Var) or same.get(a.id, a.id) != b.id:
                return False
        if not all(self.follows(slot, atom, run.trips) for slot, atom in seen):
            return False
        for slot, atom in seen:
            if isinstance(atom, Lit) and slot.step is None:
                assert isinstance(slot.first, Lit)
                slot.step = atom.value - slot.first.value
            elif isinstance(atom, ConstRef):
                slot.consts.append(atom)
            slot.varies = slot.varies or not self.equal(slot.first, atom)
        run.trips += 1
        run.removed.update(e.out.id for e in body)
        return True

    def follows(self, slot: Slot, atom: Lit | ConstRef, trip: int) -> bool:
        """Whether ``atom`` (at trip ``trip`` of the run) is a value the rolled loop can reproduce."""
        first = slot.first
        if isinstance(atom, ConstRef):
            assert isinstance(first, ConstRef)
            return atom.pshape == first.pshape and atom.mask == first.mask and (
                self.constants[atom.index].dtype == self.constants[first.index].dtype)
        assert isinstance(first, Lit)
        if same_lit(atom.value, first.value) and slot.step in (None, 0.0):
            return True
        a, v = first.value, atom.value
        # float(a + s*k) never makes -0.0: a counter that passes through it is not rolled
        whole = all(x == x and abs(x) < EXACT and x == int(x) and not (x == 0 and math.copysign(1.0, x) < 0)
                    for x in (a, v))
        if not whole:
            return False
        step = v - a if slot.step is None else slot.step
        return step == int(step) and a + step * trip == v and abs(a + step * trip) < EXACT

    def equal(self, a: ConstRef | Lit, b: ConstRef | Lit) -> bool:
        if isinstance(a, ConstRef) and isinstance(b, ConstRef):
            x, y = self.constants[a.index], self.constants[b.index]
            return x.dtype == y.dtype and torch.equal(x, y) and (
                not x.is_floating_point() or torch.equal(torch.signbit(x), torch.signbit(y)))
        return isinstance(a, Lit) and isinstance(b, Lit) and same_lit(a.value, b.value)

    def finish(self, mark: int, ins: tuple[Var, ...], recorded: list[Eqn], nxt: Sequence[Value] | None,
               value: Value | None = None) -> None:
        """End the current run before the iteration that began at ``mark`` (its inputs ``ins``):
        roll it if it is long enough and nothing after it reads a value inside it."""
        run, self.run = self.run, None
        if run is None or run.trips <= ROLL_MIN:
            return
        reads: set[int] = set()
        for e in recorded:
            reads.update(a.id for a in e.args if isinstance(a, Var))
            if e.region is not None:
                reads |= region_uses(e.region)
        for v in (*(nxt or ()), value):
            if isinstance(v, Var):
                reads.add(v.id)
        if (reads & run.removed) - {v.id for v in ins}:
            return  # an iteration reads a value inside the run (a shared subexpression): unrolled
        # The state after the run stays reachable only through the next trip or the loop's value.
        live = {v.id for v in (*(nxt or ()), value) if isinstance(v, Var)} & {v.id for v in ins}
        if not self.forget(run.removed - {v.id for v in ins}, live):
            return
        self.roll(run, mark, ins)

    def forget(self, dead: set[int], live: set[int]) -> bool:
        """Drop the tracer's caches of values inside the run (common subexpressions, memoised
        calls, guards; ``dead``: the ids no longer defined), so that nothing traced later is given
        one; False (nothing dropped) when such an entry can still be hit, from the state after the
        run that stays reachable (``live``): later code would share that value, so the run stays
        unrolled to keep the unrolled code's bits."""
        tr = self.tr
        caches: list[tuple[dict[Any, Any], Any]] = [
            (tr.build.cse, lambda k: {x for x in k[2] if isinstance(x, int)}),
            (tr.calls.memo, lambda k: {p[1] for p in k[4:] if p[0] == "v"}),
            (tr.branches.guards, lambda k: {k[0]}),
            (tr.branches.aligned_masks, lambda k: {k[0]}),
        ]
        stale = []
        for cache, ids in caches:
            for key, value in cache.items():
                v = value[0] if isinstance(value, tuple) else value
                if isinstance(v, Var) and v.id in dead:
                    used = ids(key)
                    if used & live and not used & dead:
                        return False
                    stale.append((cache, key))
        for cache, key in stale:
            del cache[key]
        return True

    def roll(self, run: Run, mark: int, ins: tuple[Var, ...]) -> None:
        build = self.build
        params = [build.new_var(v.pshape, promo=v.promo, mask=v.mask) for v in run.ins]
        subst: dict[tuple[int, int], Var] = {}
        lits: list[tuple[int, int]] = []
        lit_vars: list[Var] = []
        stacked: list[ConstRef] = []
        const_vars: list[Var] = []
        for key, slot in run.slots.items():
            if not slot.varies:
                continue
            if isinstance(slot.first, Lit):
                assert slot.step is not None
                lits.append((int(slot.first.value), int(slot.step)))
                lit_vars.append(build.new_var(()))
                subst[key] = lit_vars[-1]
            else:
                values = [self.constants[c.index] for c in slot.consts]
                stacked.append(build.atom(torch.stack(values)))  # type: ignore[arg-type]
                const_vars.append(build.new_var(slot.first.pshape, mask=slot.first.mask))
                subst[key] = const_vars[-1]
        rename = {a.id: p for a, p in zip(run.ins, params)}
        body = []
        for i, e in enumerate(run.body):
            args = tuple(subst.get((i, j), rename.get(a.id, a) if isinstance(a, Var) else a)
                         for j, a in enumerate(e.args))
            body.append(Eqn(e.prim, e.code, args, e.out, e.params, e.span, None))
        outs = tuple(rename.get(a.id, a) for a in run.outs)
        region = Region((*lit_vars, *const_vars, *params), body, outs)
        span = self.span
        tup = build.new_var(())
        eqn = Eqn("%scan", code_of("%scan"), (*run.ins, *stacked), tup,
                  {"trips": run.trips, "lits": tuple(lits), "state": len(params)}, span, region)
        # The state after the run: the values its last trip made (a state that stays an outside
        # value, or the run's own input, is defined already).
        items = [Eqn("%item", code_of("%item"), (tup,), v, {"index": k}, span)
                 for k, v in enumerate(ins) if v.id in run.removed]
        keep = [e for e in build.eqns[run.start:mark] if e.out.id not in run.removed]
        build.eqns[run.start:] = [*keep, eqn, *items, *build.eqns[mark:]]
        build.budget.equations -= len(run.body) * run.trips - len(items) - 1


def same_lit(a: float, b: float) -> bool:
    """Whether two literals are the same float, sign of zero and NaN included."""
    return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (a != a and b != b)
