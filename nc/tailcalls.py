"""Tail calls: a function whose recursive calls to itself are all tail calls runs as a loop.

`make_tail_loop` finds such functions after parsing and rewrites their self tail calls into
`Recur` nodes keyed by the function, so the tracer treats the function body as a loop body.
The walks use explicit stacks or follow only tail positions, whose depth the reader bounds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs

from . import ir


def make_tail_loop(fn: ir.Function) -> ir.Function:
    """Turn a function whose self calls are all tail calls into a loop over its parameters."""
    tail_calls, other_calls = count_self_calls(fn.body, fn.key)
    if tail_calls == 0 or other_calls:
        return fn
    return attrs.evolve(fn, body=rewrite_tail(fn.body, fn.key), tail_loop=True)


def count_self_calls(node: ir.Expr, key: str) -> tuple[int, int]:
    """(tail calls, other calls) of function ``key`` in ``node``; an explicit stack, no recursion."""
    tail = other = 0
    stack: list[tuple[object, bool]] = [(node, True)]
    while stack:
        n, in_tail = stack.pop()
        if isinstance(n, ir.Call) and n.fn == key:
            tail, other = tail + in_tail, other + (not in_tail)
        for child, child_tail in children(n):
            stack.append((child, in_tail and child_tail))
    return tail, other


def children(node: object) -> Sequence[tuple[object, bool]]:
    """Child nodes and whether each is in tail position relative to ``node``."""
    if isinstance(node, ir.If):
        return [(node.test, False), (node.then, True), (node.orelse, True)]
    if isinstance(node, ir.Let):
        return [(b.value, False) for b in node.bindings] + [(node.body, True)]
    if isinstance(node, ir.Letrec):
        return [(f.body, False) for f in node.fns] + [(node.body, True)]
    if isinstance(node, (ir.PrimCall, ir.Call, ir.Recur, ir.External)):
        return [(a, False) for a in node.args]
    if isinstance(node, ir.Loop):
        return [(b.value, False) for b in node.bindings] + [(node.body, False)]
    if isinstance(node, ir.Integrate):
        return [(node.y0, False), (node.dt, False), (node.steps, False)]
    return []


def rewrite_tail(node: ir.Expr, key: str) -> ir.Expr:
    if isinstance(node, ir.Call) and node.fn == key:
        return ir.Recur(args=node.args, key=key, span=node.span)
    if isinstance(node, ir.If):
        return attrs.evolve(node, then=rewrite_tail(node.then, key), orelse=rewrite_tail(node.orelse, key))
    if isinstance(node, (ir.Let, ir.Letrec)):
        return attrs.evolve(node, body=rewrite_tail(node.body, key))
    return node


# ---- groups of functions that call each other only in tail position ---------------------------

GROUP_PC = "%pc"
"""Name of the loop variable of a tail group that says which function runs next."""


def make_tail_groups(functions: dict[str, ir.Function], keys: Iterator[int]) -> dict[str, ir.Function]:
    """Rewrite every group of two or more functions that call each other only in tail position.

    Each member gets ``tail_group``: one loop whose variables are the function to run next
    (``%pc``) and every member's parameters, and whose body dispatches on ``%pc`` to the member
    bodies with their tail calls turned into `Recur` (so a call sets ``%pc`` and the callee's
    parameters and keeps the others). The tracer then runs the group as it runs a ``loop``:
    unrolled while the exit is static, else one masked loop.
    """
    edges = {k: calls_of(f) for k, f in functions.items()}
    out = dict(functions)
    for group in components(edges):
        members = [functions[k] for k in group]
        if len(members) < 2 or not all(only_tail_calls(f.body, set(group)) for f in members):
            continue
        loop = group_loop(members, keys)
        for f in members:
            out[f.key] = attrs.evolve(f, tail_loop=False, tail_group=loop)
    return out


def calls_of(fn: ir.Function) -> set[str]:
    """Keys of the functions ``fn``'s own body calls (nested letrec bodies are their own functions)."""
    found: set[str] = set()
    stack: list[object] = [fn.body]
    while stack:
        n = stack.pop()
        if isinstance(n, ir.Call):
            found.add(n.fn)
        elif isinstance(n, ir.Recur) and n.key == fn.key:
            found.add(fn.key)
        if isinstance(n, ir.Letrec):
            stack.append(n.body)
            continue
        stack.extend(c for c, _ in children(n))
    return found


def components(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of the call graph (Tarjan's algorithm with an explicit stack)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root] & edges.keys())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt] & edges.keys()))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(sorted(comp, key=lambda k: index[k]))
    return out


def only_tail_calls(node: ir.Expr, group: set[str]) -> bool:
    """Whether every call of a member of ``group`` in ``node`` is a tail call."""
    stack: list[tuple[object, bool]] = [(node, True)]
    while stack:
        n, in_tail = stack.pop()
        if isinstance(n, ir.Call) and n.fn in group and not in_tail:
            return False
        if isinstance(n, ir.Recur) and n.key in group and not in_tail:
            return False
        if isinstance(n, ir.Letrec):  # nested functions are members (or not) on their own
            stack.append((n.body, in_tail))
            continue
        stack.extend((c, in_tail and t) for c, t in children(n))
    return True


def group_loop(members: list[ir.Function], keys: Iterator[int]) -> ir.Loop:
    """The loop that runs a tail group (see `make_tail_groups`)."""
    gkey = "group:" + ",".join(f.key for f in members)
    pc = ir.Binding(name=GROUP_PC, key=next(keys), value=ir.Const(value=0.0))
    params = [p for f in members for p in f.params]
    index = {f.key: i for i, f in enumerate(members)}

    def jump(target: str, args: tuple[ir.Expr, ...], span: object) -> ir.Recur:
        new: list[ir.Expr] = [ir.Const(value=float(index[target]))]
        for f in members:
            new.extend(args if f.key == target else [ir.Local(name=p.name, key=p.key) for p in f.params])
        return ir.Recur(args=tuple(new), key=gkey, span=span)  # type: ignore[arg-type]

    def rewrite(node: ir.Expr) -> ir.Expr:
        if isinstance(node, ir.Call) and node.fn in index:
            return jump(node.fn, node.args, node.span)
        if isinstance(node, ir.Recur) and node.key in index:
            return jump(node.key, node.args, node.span)
        if isinstance(node, ir.If):
            return attrs.evolve(node, then=rewrite(node.then), orelse=rewrite(node.orelse))
        if isinstance(node, (ir.Let, ir.Letrec)):
            return attrs.evolve(node, body=rewrite(node.body))
        return node

    body = rewrite(members[-1].body)
    for i in range(len(members) - 2, -1, -1):
        test = ir.PrimCall(prim="=", args=(ir.Local(name=GROUP_PC, key=pc.key), ir.Const(value=float(i))))
        body = ir.If(test=test, then=rewrite(members[i].body), orelse=body, span=members[i].body.span)
    return ir.Loop(bindings=(pc, *params), body=body, key=gkey, span=members[0].span)
