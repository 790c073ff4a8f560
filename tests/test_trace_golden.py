"""Golden listings of recorded programs (`nc.make_program(src, ...).listing()`).

Each listing was generated from the implementation and then read against LANGUAGE.md: literal
subexpressions folded in float64 with IEEE results, a constant `if` traces one branch only, a
traced `if` guards the values its branches use, a loop with constant control is unrolled, a
loop whose exit depends on an input is one `%loop` equation, `rk4` follows the classic method
in the documented order, and scalars meeting vectors are aligned (`%align`) so that batch axes
stay apart from per-example axes. Structural checks below restate those promises without
depending on the numbering of variables.
"""

from __future__ import annotations

import pytest
import torch

import nc

GOLDENS = [
    pytest.param(
        '(+ x (* 2 (+ 1 2)))',
        (),
        {},
        """\
program (x=v0:f[])
  v1:f[] = + v0 6.0    ; 1:1
  return v1
""",
        id='folding',
    ),
    pytest.param(
        '(+ (* x (/ 1 0)) (sqrt -1) (- 0.1 0.3))',
        (),
        {},
        """\
program (x=v0:f[])
  v1:f[] = * v0 inf    ; 1:4
  v2:f[] = + v1 nan    ; 1:1
  v3:f[] = + v2 -0.19999999999999998    ; 1:1
  return v3
""",
        id='folding_ieee',
    ),
    pytest.param(
        '(if (> 2 1) (sqrt x) (log x))',
        (),
        {},
        """\
program (x=v0:f[])
  v1:f[] = sqrt v0    ; 1:13
  return v1
""",
        id='static_if',
    ),
    pytest.param(
        '(if (> x 0) (sqrt x) 0)',
        (),
        {},
        """\
program (x=v0:f[])
  c0 = constant scalar [0.0]
  v2:bool[] = %truth[>] v0 0.0    ; 1:5
  v4:f[] = %guard v2 v0
  v5:f[] = sqrt v4    ; 1:13
  v6:f[] = %where v2 v5 c0    ; 1:1
  return v6
""",
        id='traced_if',
    ),
    pytest.param(
        '(cond ((< x 0) (- x)) ((< x 1) (* x y)) (else y))',
        (),
        {},
        """\
program (x=v0:f[] y=v1:f[])
  v3:bool[] = %truth[<] v0 0.0    ; 1:8
  v4:bool[] = %not v3
  v5:f[] = %guard v3 v0
  v6:f[] = - v5    ; 1:16
  v7:f[] = %guard v4 v0
  v9:bool[] = %truth[<] v7 1.0    ; 1:24
  v11:f[] = %guard v9 v7
  v12:f[] = %guard v4 v1
  v13:f[] = %guard v9 v12
  v14:f[] = * v11 v13    ; 1:32
  v15:f[] = %where v9 v14 v12    ; 1:23
  v16:f[] = %where v3 v6 v15    ; 1:7
  return v16
""",
        id='traced_cond',
    ),
    pytest.param(
        '(loop ((i 0) (acc 1)) (if (>= i 3) acc (recur (+ i 1) (* acc x))))',
        (),
        {},
        """\
program (x=v0:f[])
  v1:f[] = * 1.0 v0    ; 1:55
  v2:f[] = * v1 v0    ; 1:55
  v3:f[] = * v2 v0    ; 1:55
  return v3
""",
        id='static_loop',
    ),
    pytest.param(
        '(letrec ((fact (lambda (n) (if (= n 0) 1 (* n (fact (- n 1))))))) (* x (fact 5)))',
        (),
        {},
        """\
program (x=v0:f[])
  v1:f[] = * v0 120.0    ; 1:67
  return v1
""",
        id='static_recursion',
    ),
    pytest.param(
        '(loop ((v x) (n 0)) (if (< v 1) n (recur (/ v 2) (+ n 1))))',
        (),
        {},
        """\
program (x=v0:f[])
  c0 = constant scalar [0.0]
  v16:f[] = %loop ranks=(0, 0) value_rank=0 max_iter=1000 v0 c0    ; 1:1
    { body (v6:bool[] v7:f[] v8:f[])
      v10:bool[] = %truth[<] v7 1.0    ; 1:25
      v11:bool[] = %not v10
      v12:f[] = %guard v11 v7
      v13:f[] = / v12 2.0    ; 1:42
      v14:f[] = %guard v11 v8
      v15:f[] = + v14 1.0    ; 1:50
      -> v10 v8 v13 v15 }
  return v16
""",
        id='masked_loop',
    ),
    pytest.param(
        '(rk4 (lambda (t y) (* k y)) y0 0.1 2)',
        (),
        {},
        """\
program (k=v0:f[] y0=v1:f[])
  v2:f[] = * v0 v1    ; 1:20
  v3:f[] = * 0.05 v2    ; 1:1
  v4:f[] = + v1 v3    ; 1:1
  v5:f[] = * v0 v4    ; 1:20
  v6:f[] = * 0.05 v5    ; 1:1
  v7:f[] = + v1 v6    ; 1:1
  v8:f[] = * v0 v7    ; 1:20
  v9:f[] = * 0.1 v8    ; 1:1
  v10:f[] = + v1 v9    ; 1:1
  v11:f[] = * v0 v10    ; 1:20
  v12:f[] = * 2.0 v5    ; 1:1
  v13:f[] = + v2 v12    ; 1:1
  v14:f[] = * 2.0 v8    ; 1:1
  v15:f[] = + v13 v14    ; 1:1
  v16:f[] = + v15 v11    ; 1:1
  v17:f[] = * 0.016666666666666666 v16    ; 1:1
  v18:f[] = + v1 v17    ; 1:1
  v19:f[] = * v0 v18    ; 1:20
  v20:f[] = * 0.05 v19    ; 1:1
  v21:f[] = + v18 v20    ; 1:1
  v22:f[] = * v0 v21    ; 1:20
  v23:f[] = * 0.05 v22    ; 1:1
  v24:f[] = + v18 v23    ; 1:1
  v25:f[] = * v0 v24    ; 1:20
  v26:f[] = * 0.1 v25    ; 1:1
  v27:f[] = + v18 v26    ; 1:1
  v28:f[] = * v0 v27    ; 1:20
  v29:f[] = * 2.0 v22    ; 1:1
  v30:f[] = + v19 v29    ; 1:1
  v31:f[] = * 2.0 v25    ; 1:1
  v32:f[] = + v30 v31    ; 1:1
  v33:f[] = + v32 v28    ; 1:1
  v34:f[] = * 0.016666666666666666 v33    ; 1:1
  v35:f[] = + v18 v34    ; 1:1
  v36:f[3] = %stack axis=-1 v1 v18 v35    ; 1:1
  return v36
""",
        id='rk4_two_steps',
    ),
    pytest.param(
        '(euler (lambda (t y) (* t y)) y0 dt 2)',
        (),
        {},
        """\
program (y0=v0:f[] dt=v1:f[])
  v4:f[] = * 0.0 v1    ; 1:1
  v5:f[] = * v4 v0    ; 1:22
  v6:f[] = * v1 v5    ; 1:1
  v7:f[] = + v0 v6    ; 1:1
  v8:f[] = * 1.0 v1    ; 1:1
  v9:f[] = * v8 v7    ; 1:22
  v10:f[] = * v1 v9    ; 1:1
  v11:f[] = + v7 v10    ; 1:1
  v12:f[3] = %stack axis=-1 v0 v7 v11    ; 1:1
  return v12
""",
        id='euler_traced_dt',
    ),
    pytest.param(
        '(+ (< a b c) a b c)',
        (),
        {},
        """\
program (a=v0:f[] b=v1:f[] c=v2:f[])
  v3:f[] = < v0 v1    ; 1:4
  v4:f[] = < v1 v2    ; 1:4
  v5:f[] = and v3 v4    ; 1:4
  v6:f[] = + v5 v0    ; 1:1
  v7:f[] = + v6 v1    ; 1:1
  v8:f[] = + v7 v2    ; 1:1
  return v8
""",
        id='variadic_and_chain',
    ),
    pytest.param(
        '(+ u [1 2 3])',
        (),
        {},
        """\
program (u=v0:f[])
  c0 = constant 3 [1.0, 2.0, 3.0]
  v1:f[1] = %align rank=0 extra=1 v0
  v2:f[3] = + v1 c0    ; 1:1
  return v2
""",
        id='vector_literal_alignment',
    ),
    pytest.param(
        '(+ (* s u) w)',
        (2.0, torch.ones(3), torch.ones(3)),
        {'shapes': {'u': (3,), 'w': (3,)}},
        """\
program (s=v0:f[] u=v1:f[3] w=v2:f[3])
  v3:f[1] = %align rank=0 extra=1 v0
  v4:f[3] = * v3 v1    ; 1:4
  v5:f[3] = + v4 v2    ; 1:1
  return v5
""",
        id='vector_declared_alignment',
    ),
    pytest.param(
        '(* x (dot u [1 2 3]))',
        (2.0, torch.ones(3)),
        {},
        """\
program (x=v0:f[] u=v1:f[3])
  c0 = constant 3 [1.0, 2.0, 3.0]
  v2:f[] = dot v1 c0    ; 1:6
  v3:f[] = * v0 v2    ; 1:1
  return v3
""",
        id='vector_rank_inference',
    ),
]


@pytest.mark.parametrize("src, args, options, expected", GOLDENS)
def test_golden_listing(src, args, options, expected):
    assert nc.make_program(src, *args, **options).listing() == expected.rstrip("\n")


def prims(src, *args, **options):
    """The primitives of the top-level equations, in order."""
    return [e.prim for e in nc.make_program(src, *args, **options).eqns]


def test_literal_subexpressions_fold_to_one_literal():
    (eqn,) = nc.make_program("(+ x (* 2 (+ 1 2)))").eqns
    assert eqn.prim == "+"
    assert eqn.args[1].value == 6.0


def test_folding_is_ieee_and_in_float64():
    eqns = nc.make_program("(+ (* x (/ 1 0)) (- 0.1 0.3))").eqns
    assert eqns[0].args[1].value == float("inf")
    assert eqns[1].args[1].value == 0.1 - 0.3  # float64 arithmetic, not the float32 result


def test_static_if_traces_only_the_taken_branch():
    assert prims("(if (> 2 1) (sqrt x) (log x))") == ["sqrt"]
    assert prims("(if (< 2 1) (sqrt x) (log x))") == ["log"]
    assert prims("(if 0 (sqrt x) (log x))") == ["log"]


def test_static_if_does_not_trace_an_erroneous_branch():
    # the branch not taken would be a shape error if it were traced
    f = nc.compile_fn("(if (> 1 0) x (cross [1 2] [3 4]))")
    assert f(2.0).item() == 2.0


def test_traced_if_guards_the_branch_inputs():
    ps = prims("(if (> x 0) (sqrt x) 0)")
    assert ps.index("%guard") < ps.index("sqrt") < ps.index("%where")


def test_constant_loop_unrolls_to_straight_line_code():
    assert prims("(loop ((i 0) (acc 1)) (if (>= i 3) acc (recur (+ i 1) (* acc x))))") == ["*", "*", "*"]


def test_input_dependent_loop_is_one_masked_loop_equation():
    eqns = nc.make_program("(loop ((v x) (n 0)) (if (< v 1) n (recur (/ v 2) (+ n 1))))").eqns
    assert [e.prim for e in eqns] == ["%loop"]
    assert eqns[0].params["max_iter"] == 1000
    assert nc.make_program("(loop ((v x)) (if (< v 1) v (recur (/ v 2))))", max_iter=7).eqns[0].params[
        "max_iter"] == 7


def test_rk4_records_four_stages_per_step():
    # (* k y) is evaluated 4 times per step; 2 steps
    eqns = nc.make_program("(rk4 (lambda (t y) (* k y)) y0 0.1 2)").eqns
    assert sum(1 for e in eqns if e.prim == "*" and e.span.column == 20) == 8
    assert eqns[-1].prim == "%stack" and eqns[-1].out.pshape == (3,)


def test_listing_of_an_unconstrained_vector_input_without_example_arguments():
    listing = nc.make_program("(* (norm u) x)").listing()
    assert listing.splitlines()[0].startswith("program (u=v0:f[")
    assert "norm v0" in listing


@pytest.mark.parametrize("src, options, shown", [
    ("(* x (dot u [1 2 3]))", {}, "u=v1:f[?]"),  # the program for every size of u
    ("(+ u [1 2 3])", {"shapes": {"u": (3,)}}, "u=v0:f[3]"),
])
def test_listing_without_example_arguments_for_sized_inputs(src, options, shown):
    listing = nc.make_program(src, **options).listing()
    assert shown in listing


def test_listing_shows_which_comparison_an_if_tests():
    a = nc.make_program("(if (> x 0) (sqrt x) 0)").listing()
    b = nc.make_program("(if (< x 0) (sqrt x) 0)").listing()
    assert a != b
