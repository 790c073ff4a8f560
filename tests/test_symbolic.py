"""nc <-> SymPy: every primitive maps (or is a named error), and programs round-trip exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import nc
from nc.primitives import table_rows
from nc.symbolic import from_sympy, latex_listing, lift_constants, to_latex, to_sympy

sp = pytest.importorskip("sympy")

SHARED = Path("/work/shared")
F64 = torch.float64

# One program per public row: (program, {input: value}); vectors are u, w (3) and matrices A (3x3).
U, W = [1.0, -2.0, 0.5], [0.3, 0.4, -1.2]
A = [[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]]
SPECIAL = {
    "acosh": "(acosh (+ 1 x))", "atanh": "(atanh (/ x 2))", "asin": "(asin (/ x 2))", "acos": "(acos (/ x 2))",
    "lgamma": "(lgamma (+ 2 x))", "log": "(vec (log x) (log x 3))", "atan": "(vec (atan x) (atan x y))",
    "clamp": "(clamp x -0.2 0.5)", "min": "(min x y 0.1)", "max": "(max x y 0.1)", "-": "(vec (- x) (- x y 1))",
    "/": "(vec (/ x) (/ x y 2))", "+": "(vec (+) (+ x y 1))", "*": "(vec (*) (* x y 2))",
    "=": "(vec (= x x) (= x y) (< y x 1) (> x y) (<= y y x))", "<": "(< y x)", ">": "(> x y)",
    "<=": "(<= x y)", ">=": "(>= x y)", "and": "(and (> x 0) y)", "or": "(or (> x 1) 0)",
    "not": "(not (> x y))", "vec": "(vec x y)", "ref": "(vec (ref u 1) (ref A 2 1))",
    "dot": "(dot u w)", "cross": "(cross u w)", "scale": "(scale x u)", "vlen": "(vlen u)",
    "concat": "(concat u w [x])", "roll": "(roll u 1)", "laplacian1d": "(laplacian1d (concat u w) x)",
    "mat": "(mat u w)", "matmul": "(matmul A (transpose A))", "matvec": "(matvec A u)", "outer": "(outer u w)",
    "solve": "(solve A u)", "diag": "(diag u)", "expm": "(expm (mat [0 x] [(- x) 0]))",
    "eye": "(+ (eye 3) A)", "zeros": "(+ (zeros 3) u)", "ones": "(* (ones 3) x)",
    "pow": "(pow x 3)", "modulo": "(vec (modulo 7 y) (modulo x 0.3))", "remainder": "(remainder 7 y)",
    "quotient": "(quotient 7 y)", "hypot": "(hypot x y)", "logaddexp": "(logaddexp x y)",
    "xlogy": "(vec (xlogy 0 y) (xlogy x (abs y)))", "round": "(vec (round 2.5) (round (* 10 x)))",
}
ARGS = {"x": 0.7, "y": -1.3, "u": U, "w": W, "A": A}


def sample(row) -> str:
    if row.name in SPECIAL:
        return SPECIAL[row.name]
    if row.family in ("elementwise", "logic"):
        return f"({row.name} x)"
    if row.ranks == (1,):
        return f"({row.name} u)"
    if row.ranks == (2,):
        return f"({row.name} A)"
    raise AssertionError(f"no sample program for the primitive '{row.name}': add one to SPECIAL")


def roundtrip(src: str, args: dict, batch: int = 0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """nc's value and the value of from_sympy(to_sympy(src)), on args (perturbed per batch element)."""
    f = nc.compile_fn(src)
    values = {k: torch.tensor(v, dtype=F64) for k, v in args.items() if k in f.inputs}
    if batch:  # a leading batch axis in front of the (aligned) batch axes the case already has
        g = torch.Generator().manual_seed(seed)
        axes = max((v.dim() - f.ranks[k] for k, v in values.items()), default=0)
        values = {k: v.reshape((1,) * (axes + f.ranks[k] - v.dim()) + tuple(v.shape)) for k, v in values.items()}
        values = {k: v * (0.9 + 0.2 * torch.rand((batch,) + (1,) * v.dim(), generator=g, dtype=F64))
                  for k, v in values.items()}
    shapes = {k: tuple(v.shape[v.dim() - f.ranks[k]:]) for k, v in values.items() if f.ranks[k]}
    back = from_sympy(to_sympy(src, shapes=shapes), inputs=f.inputs)
    return f(**values), nc.compile_fn(back, shapes=shapes)(**values), back


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = torch.broadcast_tensors(a, b)
    scale = float(a.abs().max()) if a.numel() else 1.0
    return torch.allclose(a, b, rtol=1e-12, atol=1e-12 * scale, equal_nan=True)


@pytest.mark.parametrize("row", table_rows(), ids=lambda r: r.name)
@pytest.mark.slow
def test_every_primitive_maps_to_sympy_and_back(row):
    a, b, back = roundtrip(sample(row), ARGS)
    assert a.shape == b.shape and close(a, b), (back, a, b)


def test_a_program_reads_as_mathematics():
    x, m1, m2, r, G = sp.symbols("x m1 m2 r G")
    assert to_sympy("(define G 6.674) (/ (* G m1 m2) (pow r 2))", constants="symbols") == G * m1 * m2 / r**2
    assert to_sympy("(define G 6.674) (/ (* G m1 m2) (* r r))") == sp.Float(6.674) * m1 * m2 / r**2
    assert to_sympy("(if (> x 0) (sqrt x) (* 2 pi))") == sp.Piecewise((sp.sqrt(x), x > 0), (2 * sp.pi, True))
    assert to_sympy("(cond ((< x 0) -1) ((= x 0) 0) (else 1))") == \
        sp.Piecewise((-1, x < 0), (0, sp.Eq(x, 0)), (1, True))
    assert to_sympy("(define (sq a) (* a a)) (let* ((a (sq x)) (b (+ a 1))) (* a b))") == x**2 * (x**2 + 1)
    gl = sp.Symbol("g/L")
    assert to_sympy("(* -1 g/L (sin theta))") == -gl * sp.sin(sp.Symbol("theta"))
    u = sp.IndexedBase("u")
    assert to_sympy("(scale 2 u)", shapes={"u": (2,)}) == sp.Matrix([2 * u[0], 2 * u[1]])
    assert to_sympy("(eye 2)") == sp.eye(2)


def test_static_loops_and_recursion_unroll():
    assert to_sympy("(letrec ((fact (lambda (n) (if (= n 0) 1 (* n (fact (- n 1))))))) (fact 5))") == 120
    x = sp.Symbol("x")
    assert to_sympy("(loop ((acc 0) (i 0)) (if (>= i 3) acc (recur (+ acc x) (+ i 1))))") == 3 * x


@pytest.mark.parametrize("src, named", [
    ("(define (decay t y) (- y)) (euler decay 1.0 0.1 10)", "(euler ...)"),
    ("(rk4 (lambda (t y) (- y)) x 0.1 10)", "(rk4 ...)"),
    ("(loop ((i x)) (if (> i 10) i (recur (* 2 i))))", "masked loop"),
    ("(define (f n) (if (= n 0) 0 (+ 1 (f (- n 1))))) (f x)", "'f'"),
])
def test_forms_without_closed_form_are_named_errors(src, named):
    with pytest.raises(nc.NCError, match=named.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")) as e:
        to_sympy(src)
    assert e.value.line == 1 and e.value.column is not None


def test_vector_inputs_need_their_size():
    with pytest.raises(nc.CallError, match="size of input 'u'"):
        to_sympy("(norm u)")


def test_learned_components_are_named_errors():
    model = nc.compile("(+ (* k v) (drag v))", params={"k": 1.0}, modules={"drag": torch.nn.Linear(1, 1)})
    with pytest.raises(nc.NCError, match="'drag' is a learned component"):
        to_sympy(model)


def test_a_compiled_function_and_a_module_give_their_expressions():
    k, x = sp.symbols("k x")
    assert to_sympy(nc.compile_fn("(* k x)")) == k * x
    model = nc.compile("(define k 2.0) (* k x)", trainable=["k"])
    assert to_sympy(model) == k * x


def test_from_sympy_writes_params_as_trainable_defines():
    x, y = sp.symbols("x y")
    expr, values = lift_constants(6.5 * x**2 + sp.Float(0.25) * sp.sin(y) + 2)
    assert values == {"c0": 0.25, "c1": 6.5}
    src = from_sympy(expr, params=values, inputs=["x", "y"])
    assert src.startswith("(define c0 0.25)\n(define c1 6.5)\n(lambda (x y)")
    model = nc.compile(src, trainable=list(values), dtype=F64)
    assert sorted(n for n, _ in model.named_parameters()) == ["params.c0", "params.c1"] or \
        sorted(n for n, _ in model.named_parameters()) == ["c0", "c1"]
    xs, ys = torch.tensor([0.5, 2.0], dtype=F64), torch.tensor([1.0, -1.0], dtype=F64)
    assert torch.allclose(model(xs, ys), 6.5 * xs**2 + 0.25 * torch.sin(ys) + 2, rtol=1e-14)


@pytest.mark.parametrize("bad, message", [
    (sp.Symbol("a b"), "'a b' is not an nc name"),
    (sp.I * sp.Symbol("x"), "not a real number"),
    (sp.besselj(0, sp.Symbol("x")), "no nc primitive"),
])
def test_from_sympy_errors_are_call_errors(bad, message):
    with pytest.raises(nc.CallError, match=message):
        from_sympy(bad)


def test_latex():
    assert to_latex("(define G 6.674) (/ (* G m1 m2) (pow r 2))") == r"\frac{G m_{1} m_{2}}{r^{2}}"
    assert latex_listing("(define G 6.674) (/ (* G m1 m2) (pow r 2))").splitlines()[1] == "G = 6.674"


def roundtrip_programs() -> list[tuple[str, str, dict, int]]:
    """(id, program, inputs, batch) for the Feynman programs and the conformance programs with a closed form."""
    out = []
    g = torch.Generator().manual_seed(12)
    feynman = SHARED / "data" / "feynman15.json"
    for d in json.loads(feynman.read_text()) if feynman.exists() else []:
        args = {}
        for name in nc.compile_fn(d["program"]).inputs:
            if name in d["input_ranges"]:
                lo, hi = d["input_ranges"][name]
                args[name] = (lo + (hi - lo) * torch.rand(64, generator=g, dtype=F64)).tolist()
            else:
                args[name] = float(d["constants"][name])
        out.append((d["id"], d["program"], args, 0))
    cases = SHARED / "conformance" / "cases.jsonl"
    for line in cases.read_text().splitlines() if cases.exists() else []:
        case = json.loads(line)
        src = case["program"]
        if case.get("error") or "grad_wrt" in case or any(w in src for w in ("(euler", "(rk4", "(loop")):
            continue
        try:
            nc.compile_fn(src)
        except nc.NCError:
            continue
        out.append((case["id"], src, case["args"], 8))
    return out


@pytest.mark.slow
def test_feynman_and_conformance_programs_round_trip():
    programs = roundtrip_programs()
    passed = []
    for pid, src, args, batch in programs:
        a, b, back = roundtrip(src, args, batch=batch)
        assert a.shape == b.shape and close(a, b), (pid, back)
        passed.append(pid)
    assert len(passed) >= 95, len(passed)


def test_nc_show_latex(tmp_path, capsys):
    from nc.cli import main

    path = tmp_path / "gravity.nc"
    path.write_text("(define G 6.674)\n(/ (* G m1 m2) (pow r 2))\n")
    assert main(["show", str(path), "--latex"]) == 0
    assert capsys.readouterr().out == "\\frac{G m_{1} m_{2}}{r^{2}}\nG = 6.674\n"
    path.write_text("(rk4 (lambda (t y) (- y)) 1 0.1 3)")
    assert main(["show", str(path), "--latex"]) == 1
    assert "(rk4 ...) integrates numerically" in capsys.readouterr().err
