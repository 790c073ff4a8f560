"""The three C programs generated with `nc.c_codegen.Codegen` from a step's graph.

- `generate`: ``nc_loss``, the whole loss-and-gradient loop of the compiled training step: the
  loop over the steps, the step and its sensitivities, the residuals against the data and the
  sums of the loss and the gradient, one C function (no Python per step).
- `generate_lanes`: the same ``nc_loss`` for a batch of independent trajectories too large for
  registers: the step of ONE trajectory is scalarized, every scalar being a GCC/Clang vector of
  4 float64 or 8 float32 trajectories, and each group's whole rollout runs in registers: one
  fused loop, as XLA fuses the batch (LV batch 256: 1.2 ms float64 against 5.3 ms with one loop
  per operation over the batch).
- `generate_rollout`: ``nc_rollout``, the forward rollout alone (no sensitivities).

Each returns the C source and its workspace size in bytes; `nc.c_backend` compiles and wraps them.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence

import torch
import torch.fx
from torch import Tensor

from .c_build import Unsupported
from .c_codegen import CTYPES, UNROLL, Buffer, Codegen, View, const_decl, contiguous, declare, literal

__all__ = ["generate", "generate_lanes", "generate_rollout"]


LANE_BYTES = 32
"""Lanes mode: every scalar of one trajectory's step becomes a GCC/Clang vector of this many
bytes (4 float64 or 8 float32 trajectories), so arithmetic is SIMD with no loops to compile."""
VECTOR_SAFE = {"{a}", "({a} + {b})", "({a} - {b})", "({a} * {b})", "({a} / {b})", "(-{a})", "(({t})1 / {a})",
               "({a} * {a})", "({a} * {a} * {a})", "(({t})1 / ({a} * {a}))"}
"""Templates that are plain arithmetic, valid on vectors as written (others run lane by lane)."""
LANE_VAR = re.compile(r"\b(v\d+_\d+|q\d+|w\d+)\b")


def reduce_sums(ct: str, ny: int, n: int, n_theta: int, dtype: torch.dtype) -> list[str]:
    """The end of ``nc_loss``: the elementwise sums ``sq`` and ``rs`` reduced into ``out``, the
    mean squared error over ``n`` values and its gradient (``2/n * sum(r * S)``)."""
    return [f"  {ct} loss = 0; for (int e = 0; e < {ny}; e++) loss += sq[e];",
            f"  out[0] = loss / ({ct}){n};",
            f"  for (int p = 0; p < {n_theta}; p++) {{",
            f"    {ct} acc = 0; for (int e = 0; e < {ny}; e++) acc += rs[p*{ny} + e];",
            f"    out[1 + p] = acc * {literal(2 / n, dtype)};",
            "  }", "}", ""]

def generate_lanes(graph: torch.fx.GraphModule, *, example: Sequence[int], batch: int, n_theta: int,
                   n_prefix: int, steps: int, start: int, fixed: Sequence[Tensor],
                   dtype: torch.dtype) -> tuple[str, int]:
    """Like `generate` (the same arguments of ``nc_loss``) for a batch of ``batch``
    independent trajectories of shape ``example`` (the state's shape is ``(batch, *example)``),
    ``graph`` being ONE trajectory's step: the trajectories run a SIMD vector at a time
    (`LANE_BYTES`), the whole rollout of a group in registers (one fused loop, as XLA fuses the
    batch), rather than one loop per operation over the whole batch."""
    if dtype not in (torch.float64, torch.float32):
        raise Unsupported(f"dtype {dtype}")
    g = Codegen(graph, dtype)
    example = tuple(example)
    nex = math.prod(example)
    k = View(Buffer("k", 1, torch.float64, "scalars"), (), ())
    y = g.new_buffer(example, dtype)
    s = g.new_buffer((n_theta, *example), dtype)
    theta = View(Buffer("theta", n_theta, dtype, "ptr"), (n_theta,), (1,))
    placeholders = [n for n in graph.graph.nodes if n.op == "placeholder"]
    if any(n.users for n in placeholders[4:]):
        raise Unsupported("lanes: the step reads inputs other than the state and the constants")
    fixed_views = [View(Buffer(f"fx{i}", 1, dtype, "ptr"), (), ()) for i in range(len(fixed))]
    y2, s2 = g.plan([k, y, s, theta, *fixed_views])
    if y2.shape != example or s2.shape != (n_theta, *example) or y2.buf.dtype != dtype or s2.buf.dtype != dtype:
        raise Unsupported("lanes: the step's outputs are not one trajectory's")
    ny2 = g.copy(y2) if y2.buf in (y.buf, s.buf) else y2
    ns2 = g.copy(s2) if s2.buf in (y.buf, s.buf) else s2
    g.decide_storage()
    if any(b.kind == "array" for b in g.buffers) or any(op.reduce is not None for op in g.ops):
        raise Unsupported("lanes: an operation too large to keep in registers")
    ct = CTYPES[dtype]
    width = LANE_BYTES // (8 if dtype == torch.float64 else 4)
    ny = batch * nex
    lanes = f"for (int l = 0; l < {width}; l++) "

    def sub(text: str) -> str:  # one lane of every vector in a statement
        return LANE_VAR.sub(r"\1[l]", text)
    lines = ["#include <math.h>", "", f"typedef {ct} vec __attribute__((vector_size({LANE_BYTES})));",
             f"typedef unsigned char vbool __attribute__((vector_size({width})));",
             "void nc_loss(void **args) {",
             f"  const {ct} *theta = (const {ct} *)args[0], *ys0 = (const {ct} *)args[1];",
             f"  const {ct} *S0 = (const {ct} *)args[2], *data = (const {ct} *)args[3];",
             f"  {ct} *out = ({ct} *)args[4];", "  (void)theta;"]
    for buf, vals in g.consts:
        lines.append("  " + const_decl(buf, vals))
    last = n_prefix - 1

    def vdecl(b: Buffer) -> str:
        if b.dtype not in (dtype, torch.bool):
            raise Unsupported(f"lanes: a value of dtype {b.dtype}")
        return ("vbool " if b.dtype == torch.bool else "vec ") + ", ".join(f"{b.name}_{i}" for i in range(b.numel)) + ";"
    lines += [f"  {ct} *sq = ({ct} *)args[5], *rs = sq + {ny};  /* the workspace: a batch may not fit the stack */",
              f"  for (int e = 0; e < {ny}; e++) sq[e] = 0;",
              f"  for (int e = 0; e < {ny * n_theta}; e++) rs[e] = 0;",
              f"  for (int j = 0; j < {n_prefix}; j++)",
              f"    for (int e = 0; e < {ny}; e++) {{",
              f"      {ct} r = ys0[j*{ny} + e] - data[j*{ny} + e];",
              "      sq[e] += r * r;",
              f"      for (int p = 0; p < {n_theta}; p++) rs[p*{ny} + e] += r * S0[(j*{n_theta} + p)*{ny} + e];",
              "    }",
              f"  for (int b0 = 0; b0 < {batch}; b0 += {width}) {{",
              f"    int bb[{width}];",
              f"    {lanes}bb[l] = b0 + l < {batch} ? b0 + l : {batch - 1};  /* a last group's spare lanes repeat */",
              "    " + vdecl(y.buf), "    " + vdecl(s.buf),
              "    vec " + ", ".join(f"q{e}" for e in range(nex)) + ";",
              "    vec " + ", ".join(f"w{e}" for e in range(nex * n_theta)) + ";"]
    for e in range(nex):
        lines.append(f"    {lanes}{{ {y.buf.ref(e)}[l] = ys0[{last * ny} + bb[l]*{nex} + {e}]; q{e}[l] = 0; }}")
    for p in range(n_theta):
        for e in range(nex):
            lines.append(f"    {lanes}{{ {s.buf.ref(p * nex + e)}[l] = S0[({last * n_theta + p}*{batch} + bb[l])*{nex}"
                         f" + {e}]; w{p * nex + e}[l] = 0; }}")
    lines.append(f"    for (int i = 0; i < {steps}; i++) {{")
    lines.append(f"      const double k = (double)(i + {start}); (void)k;")
    lines.append(f"      const {ct} *d = data + (i + {n_prefix}) * {ny};")
    for b in g.buffers:
        if b.kind == "scalars" and b not in (y.buf, s.buf):
            lines.append("      " + vdecl(b))
    for op in g.ops:
        for ix in itertools.product(*(range(n) for n in op.out.shape)):
            subs, mixed = {}, False
            for key, v in zip("abc", op.ins):
                if isinstance(v, View):
                    ref = v.at(ix)
                    if CTYPES[v.buf.dtype] != op.ctype:  # cast first, as torch does: lane by lane
                        ref, mixed = f"(({op.ctype}){ref})", True
                    subs[key] = ref
                else:
                    subs[key] = v
            expr = op.template.format(t=op.ctype, f=op.func, **subs)
            target = op.out.at(ix)
            if (op.template in VECTOR_SAFE and op.out.buf.dtype == dtype and op.ctype == ct and not mixed
                    and LANE_VAR.search(expr)):  # (all-scalar right sides are stored lane by lane)
                lines.append(f"      {target} = {expr};")
            else:
                lines.append(f"      {lanes}{sub(target)} = ({CTYPES[op.out.buf.dtype]}){sub(expr)};")
    idx = list(itertools.product(*(range(n) for n in example)))
    for e, ix in enumerate(idx):
        lines.append(f"      {{ vec dv; {lanes}dv[l] = d[bb[l]*{nex} + {e}];")
        lines.append(f"        vec r = {ny2.at(ix)} - dv; q{e} += r * r;")
        for p in range(n_theta):
            lines.append(f"        w{p * nex + e} += r * {ns2.at((p, *ix))};")
        lines.append("      }")
    for e, ix in enumerate(idx):
        lines.append(f"      {y.buf.ref(e)} = {ny2.at(ix)};")
    for p in range(n_theta):
        for e, ix in enumerate(idx):
            lines.append(f"      {s.buf.ref(p * nex + e)} = {ns2.at((p, *ix))};")
    lines += ["    }",
              f"    for (int l = 0; l < {width} && b0 + l < {batch}; l++) {{"]
    for e in range(nex):
        lines.append(f"      sq[(b0 + l)*{nex} + {e}] += q{e}[l];")
        for p in range(n_theta):
            lines.append(f"      rs[{p * ny} + (b0 + l)*{nex} + {e}] += w{p * nex + e}[l];")
    lines += ["    }", "  }", *reduce_sums(ct, ny, ny * (n_prefix + steps), n_theta, dtype)]
    return "\n".join(lines), ny * (1 + n_theta) * (8 if dtype == torch.float64 else 4)


def generate(graph: torch.fx.GraphModule, *, shape: Sequence[int], n_theta: int, n_prefix: int, steps: int,
             start: int, fixed: Sequence[Tensor], dtype: torch.dtype) -> tuple[str, int]:
    """The C source of ``nc_loss(void **args)`` and its workspace size in bytes. ``args``:
    theta, ys0 (n_prefix, *shape), S0 (n_prefix, P, *shape), data (n_prefix + steps, *shape),
    out (1 + P: the loss and the gradient), workspace, then the fixed inputs; all contiguous."""
    if dtype not in (torch.float64, torch.float32):
        raise Unsupported(f"dtype {dtype}")
    g = Codegen(graph, dtype)
    ny = math.prod(shape)
    shape = tuple(shape)
    small = ny * n_theta <= UNROLL
    k = View(Buffer("k", 1, torch.float64, "scalars"), (), ())
    y = g.new_buffer(shape, dtype)
    s = g.new_buffer((n_theta, *shape), dtype)
    theta = View(Buffer("theta", n_theta, dtype, "ptr"), (n_theta,), (1,))
    fixed_views = []
    for i, f in enumerate(fixed):
        if f.dtype not in CTYPES:
            raise Unsupported(f"a fixed input of dtype {f.dtype}")
        fixed_views.append(View(Buffer(f"fx{i}", f.numel(), f.dtype, "ptr"), tuple(f.shape), contiguous(f.shape)))
    y2, s2 = g.plan([k, y, s, theta, *fixed_views])
    if y2.shape != shape or s2.shape != (n_theta, *shape):
        raise Unsupported(f"the step's outputs have shapes {y2.shape}, {s2.shape}")
    if y2.buf.dtype != dtype or s2.buf.dtype != dtype:
        raise Unsupported("the step's outputs are not in the state's dtype")
    # The next state: copy (through a temporary when an output reads the current state).
    ny2 = g.copy(y2) if y2.buf in (y.buf, s.buf) else y2
    ns2 = g.copy(s2) if s2.buf in (y.buf, s.buf) else s2
    g.decide_storage()
    if not small:  # the loop's state, and the outputs read by loops after the step's operations
        for b in (y.buf, s.buf, ny2.buf, ns2.buf):
            b.kind = "array" if b.kind == "scalars" else b.kind
    loop_state = {y.buf.name, s.buf.name}
    ws = g.workspace(loop_state, {ny2.buf.name, ns2.buf.name})
    ct = CTYPES[dtype]
    lines = ["#include <math.h>", "#include <string.h>", "", "void nc_loss(void **args) {",
             f"  const {ct} *theta = (const {ct} *)args[0], *ys0 = (const {ct} *)args[1];",
             f"  const {ct} *S0 = (const {ct} *)args[2], *data = (const {ct} *)args[3];",
             f"  {ct} *out = ({ct} *)args[4]; char *ws = (char *)args[5];"]
    for i, fv in enumerate(fixed_views):
        lines.append(f"  const {CTYPES[fv.buf.dtype]} *fx{i} = (const {CTYPES[fv.buf.dtype]} *)args[{6 + i}];")
    lines.append("  (void)ws; (void)theta;")
    for buf, vals in g.consts:
        lines.append("  " + const_decl(buf, vals))
    state_arrays = [y.buf, s.buf]
    for b in state_arrays:  # the state and the sums after the step's buffers (not the stack: a batch may not fit)
        if b.kind == "array":
            lines.append(f"  {ct} *{b.name} = ({ct} *)(ws + {ws});")
            ws += b.numel * 8
        else:
            lines.append("  " + declare(b, {}, ct))
    lines.append(f"  {ct} *sq = ({ct} *)(ws + {ws}), *rs = sq + {ny};")
    ws += ny * (1 + n_theta) * 8
    # the prefix: residuals of the states before the loop, and the state the loop starts from
    last = n_prefix - 1
    lines += [f"  for (int e = 0; e < {ny}; e++) sq[e] = 0;",
              f"  for (int e = 0; e < {ny * n_theta}; e++) rs[e] = 0;",
              f"  for (int j = 0; j < {n_prefix}; j++) {{",
              f"    for (int e = 0; e < {ny}; e++) {{",
              f"      {ct} r = ys0[j*{ny} + e] - data[j*{ny} + e];",
              "      sq[e] += r * r;",
              f"      for (int p = 0; p < {n_theta}; p++) rs[p*{ny} + e] += r * S0[(j*{n_theta} + p)*{ny} + e];",
              "    }", "  }"]
    for e in range(ny) if y.buf.kind == "scalars" else []:
        lines.append(f"  {y.buf.ref(e)} = ys0[{last * ny + e}];")
    if y.buf.kind == "array":
        lines.append(f"  memcpy({y.buf.name}, ys0 + {last * ny}, sizeof({ct}) * {ny});")
    for e in range(ny * n_theta) if s.buf.kind == "scalars" else []:
        lines.append(f"  {s.buf.ref(e)} = S0[{last * ny * n_theta + e}];")
    if s.buf.kind == "array":
        lines.append(f"  memcpy({s.buf.name}, S0 + {last * ny * n_theta}, sizeof({ct}) * {ny * n_theta});")
    lines.append(f"  for (int i = 0; i < {steps}; i++) {{")
    lines.append(f"    const double k = (double)(i + {start}); (void)k;")
    lines.append(f"    const {ct} *d = data + (i + {n_prefix}) * {ny};")
    for b in g.buffers:
        if b.kind in ("scalars", "array") and b.name not in loop_state and b.name != "k":
            lines.append("    " + declare(b, g.offsets, CTYPES[b.dtype]))
    for op in g.ops:
        g.emit_op(op, lines, 2)
    # residuals and sums (as inductor_step.rollout_loss: sq += r*r; rs += r*S'), then the next state
    idx = list(itertools.product(*(range(n) for n in shape)))
    if small:
        for e, ix in enumerate(idx):
            lines.append(f"    {{ {ct} r = {ny2.at(ix)} - d[{e}]; sq[{e}] += r * r;")
            for p in range(n_theta):
                lines.append(f"      rs[{p * ny + e}] += r * {ns2.at((p, *ix))};")
            lines.append("    }")
        for e, ix in enumerate(idx):
            lines.append(f"    {y.buf.ref(e)} = {ny2.at(ix)};")
        for p in range(n_theta):
            for e, ix in enumerate(idx):
                lines.append(f"    {s.buf.ref(p * ny + e)} = {ns2.at((p, *ix))};")
    else:
        names = [f"i{d}" for d in range(len(shape))]
        flat = " + ".join([f"{n}*{st}" for n, st in zip(names, contiguous(shape))] or ["0"])
        body = [f"{ct} r = {ny2.at_loop(names)} - d[{flat}]; sq[{flat}] += r * r;",
                f"for (int p = 0; p < {n_theta}; p++) rs[p*{ny} + {flat}] += r * {ns2.at_loop(['p', *names])};"]
        loops = "".join(f"for (int {n} = 0; {n} < {m}; {n}++) " for n, m in zip(names, shape))
        lines.append(f"    {loops}{{ {' '.join(body)} }}")
        lines.append(f"    {loops}{y.buf.name}[{flat}] = {ny2.at_loop(names)};")
        lines.append(f"    for (int p = 0; p < {n_theta}; p++) {loops}"
                     f"{s.buf.name}[p*{ny} + {flat}] = {ns2.at_loop(['p', *names])};")
    lines += ["  }", *reduce_sums(ct, ny, ny * (n_prefix + steps), n_theta, dtype)]
    return "\n".join(lines), ws


def generate_rollout(graph: torch.fx.GraphModule, *, shape: Sequence[int], n_prefix: int, steps: int, start: int,
                     fixed: Sequence[Tensor], dtype: torch.dtype) -> tuple[str, int]:
    """The C source of ``nc_rollout(void **args)`` (forward only, no sensitivities) and its
    workspace size in bytes. ``graph`` is ``(k, y, *fixed) -> (y',)``. ``args``: out
    (``(n_prefix + steps, *shape)``, its first ``n_prefix`` rows the initial states, the rest
    written here), workspace, then the fixed inputs; all contiguous. The state is read from the
    row written the step before (no copy of it is kept: the trajectory is the output)."""
    if dtype not in (torch.float64, torch.float32):
        raise Unsupported(f"dtype {dtype}")
    g = Codegen(graph, dtype)
    ny = math.prod(shape)
    shape = tuple(shape)
    k = View(Buffer("k", 1, torch.float64, "scalars"), (), ())
    y = View(Buffer("yp", ny, dtype, "ptr"), shape, contiguous(shape))
    fixed_views = []
    for i, f in enumerate(fixed):
        if f.dtype not in CTYPES:
            raise Unsupported(f"a fixed input of dtype {f.dtype}")
        fixed_views.append(View(Buffer(f"fx{i}", f.numel(), f.dtype, "ptr"), tuple(f.shape), contiguous(f.shape)))
    outs = g.plan([k, y, *fixed_views])
    if len(outs) != 1 or outs[0].shape != shape or outs[0].buf.dtype != dtype:
        raise Unsupported("the step's output is not one state of the state's shape and dtype")
    y2 = outs[0]
    g.decide_storage()
    ws = g.workspace(set(), {y2.buf.name})  # the next state lives until it is stored
    ct = CTYPES[dtype]
    lines = ["#include <math.h>", "", "void nc_rollout(void **args) {",
             f"  {ct} *out = ({ct} *)args[0]; char *ws = (char *)args[1];"]
    for i, fv in enumerate(fixed_views):
        lines.append(f"  const {CTYPES[fv.buf.dtype]} *fx{i} = (const {CTYPES[fv.buf.dtype]} *)args[{2 + i}];")
    lines.append("  (void)ws;")
    for buf, vals in g.consts:
        lines.append("  " + const_decl(buf, vals))
    lines += [f"  for (int i = 0; i < {steps}; i++) {{",
              f"    const double k = (double)(i + {start}); (void)k;",
              f"    const {ct} *yp = out + (i + {n_prefix - 1}) * {ny}; (void)yp;",
              f"    {ct} *yn = out + (i + {n_prefix}) * {ny};"]
    for b in g.buffers:
        if b.kind in ("scalars", "array") and b.name != "k":
            lines.append("    " + declare(b, g.offsets, CTYPES[b.dtype]))
    for op in g.ops:
        g.emit_op(op, lines, 2)
    if ny <= UNROLL:
        for e, ix in enumerate(itertools.product(*(range(n) for n in shape))):
            lines.append(f"    yn[{e}] = {y2.at(ix)};")
    else:
        names = [f"i{d}" for d in range(len(shape))]
        flat = " + ".join([f"{n}*{st}" for n, st in zip(names, contiguous(shape))] or ["0"])
        loops = "".join(f"for (int {n} = 0; {n} < {m}; {n}++) " for n, m in zip(names, shape))
        lines.append(f"    {loops}yn[{flat}] = {y2.at_loop(names)};")
    lines += ["  }", "}", ""]
    return "\n".join(lines), ws

