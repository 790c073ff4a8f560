"""`nc.fx.to_fx`: the recorded program as a torch.fx GraphModule that computes the same values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.fx

import nc
from nc.fx import MaskedLoop, to_fx
from nc.runtime import masked_loop

SHARED = Path("/work/shared")
F64 = torch.float64


def programs() -> list[tuple[str, str, dict]]:
    out = []
    g = torch.Generator().manual_seed(4)
    feynman = SHARED / "data" / "feynman15.json"
    for d in json.loads(feynman.read_text()) if feynman.exists() else []:
        args = {}
        for name in nc.compile_fn(d["program"]).inputs:
            lo, hi = d["input_ranges"].get(name, (d["constants"].get(name, 1.0),) * 2)
            args[name] = (lo + (hi - lo) * torch.rand(32, generator=g, dtype=F64)).tolist()
        out.append((d["id"], d["program"], args))
    for name in ("cases.jsonl", "recursion.jsonl"):
        path = SHARED / "conformance" / name
        for line in path.read_text().splitlines() if path.exists() else []:
            case = json.loads(line)
            if not case.get("error"):
                out.append((case["id"], case["program"], case["args"]))
    return out


@pytest.mark.slow
def test_the_graph_computes_what_the_compiled_function_computes():
    equal = 0
    for pid, src, args in programs():
        try:
            f = nc.compile_fn(src)
        except nc.NCError:
            continue  # a program the conformance suite expects to fail
        values = [torch.tensor(args[n], dtype=F64) for n in f.inputs]
        gm = to_fx(f.program(*values))
        assert isinstance(gm, torch.fx.GraphModule)
        got, want = gm(*values), f(*values)
        assert got.shape == want.shape, pid
        assert torch.allclose(got, want, rtol=1e-12, atol=0, equal_nan=True), pid
        equal += 1
    assert equal >= 105, equal  # 109 today: 15 Feynman + 94 conformance


def test_nodes_carry_source_spans():
    src = "(define G 6.674)\n(let ((r2 (* r r)))\n  (/ (* G m1 m2) r2))"
    f = nc.compile_fn(src)
    gm = to_fx(f.program(torch.tensor(2.0, dtype=F64), 1.0, 1.0))
    ops = [n for n in gm.graph.nodes if n.op == "call_function"]
    assert len(ops) == 4  # r*r, G*m1, *m2, /
    spans = {(n.meta["nc_span"].line, n.meta["nc_span"].column) for n in ops}
    assert spans == {(2, 11), (3, 6), (3, 3)}
    assert 'line 2, column 11' in ops[0].meta["stack_trace"] and "(let ((r2 (* r r)))" in ops[0].meta["stack_trace"]
    assert [n.meta["nc_input"] for n in gm.graph.nodes if n.op == "placeholder"] == ["r", "m1", "m2"]


def test_names_that_are_not_identifiers_become_placeholders():
    f = nc.compile_fn("(* -1 g/L (sin theta))")
    gm = to_fx(f.program(torch.tensor(0.3), torch.tensor(9.8)))
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    assert [n.meta["nc_input"] for n in placeholders] == list(f.inputs) == ["g/L", "theta"]
    assert all(n.name.isidentifier() for n in placeholders)
    x = torch.tensor([0.1, 0.5])
    assert torch.equal(gm(*[x if n == "theta" else torch.tensor(9.8) for n in f.inputs]),
                       f(**{"theta": x, "g/L": torch.tensor(9.8)}))


def test_masked_loops_are_one_module_node_and_learned_components_call_modules():
    f = nc.compile_fn("(loop ((i x) (n 0)) (if (< i 1) n (recur (/ i 2) (+ n 1))))")
    x = torch.tensor([3.0, 10.0, 100.0])
    gm = to_fx(f.program(x))
    calls = [n for n in gm.graph.nodes if n.op == "call_module"]
    assert len(calls) == 1 and isinstance(gm.get_submodule(calls[0].target), MaskedLoop)
    assert torch.equal(gm(x), f(x)) and masked_loop is not None
    net = torch.nn.Linear(2, 1).double()
    model = nc.compile("(+ (* k (ref v 0)) (ref (drag v) 0))", params={"k": 2.0}, modules={"drag": net},
                       shapes={"v": (2,)}, dtype=F64)
    v = torch.randn(4, 2, dtype=F64)
    given = {"v": v, "k": model.params["k"]}
    ordered = [given[n] for n in model._compiled.names]
    gm = to_fx(model._compiled.program_for(ordered))
    assert [n.target for n in gm.graph.nodes if n.op == "call_module"] == ["X0"]
    assert torch.equal(gm(*ordered), model(v))


def test_fx_passes_work_on_the_graph():
    f = nc.compile_fn("(+ (sin x) (cos x))")
    gm = to_fx(f.program(torch.tensor([0.5, 1.0], dtype=F64)))
    for node in gm.graph.nodes:  # swap sin for a custom op: an ordinary fx rewrite
        if node.op == "call_function" and node.target is torch.sin:
            node.target = torch.tanh
    gm.recompile()
    x = torch.tensor([0.5, 1.0], dtype=F64)
    assert torch.equal(gm(x), torch.tanh(x) + torch.cos(x))


def test_to_fx_is_a_method_of_the_recording() -> None:
    f = nc.compile_fn("(+ (sin x) 1)")
    x = torch.rand(4)
    assert torch.equal(f.program().to_fx()(x), nc.to_fx(f.program())(x))
