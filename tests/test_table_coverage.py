"""The primitive table is the one description of a primitive; these tests keep the others in step.

Adding a primitive is one row in `nc/primitives.py`, one entry in `tests/opdb.py`, one in
`tests/refeval.py` ``PRIMITIVES`` and one in `tests/strategies.py` ``GEN_PRIMITIVES`` (or a
commented line in its ``NOT_GENERATED``). Each test here names what is missing. The domains the
rows declare are each reached by a call outside them, and docs/errors.md lists exactly them.
"""

from __future__ import annotations

import re
from pathlib import Path

import opdb
import pytest
import refeval
import strategies
import torch

import nc
from nc.domains import documented_list
from nc.primitives import PUBLIC_NAMES, ROWS, TABLE, Domain, Primitive, lookup, recorded_row, table_rows
from nc.program import Eqn

F64 = torch.float64
DOCS = Path(__file__).resolve().parent.parent / "docs"


# ---- the op database, the reference evaluator and the generator name every public row ------------
def test_every_public_name_has_an_op_database_entry() -> None:
    missing = sorted(set(PUBLIC_NAMES) - {e.name for e in opdb.ENTRIES})
    assert not missing, f"no entry in tests/opdb.py for: {' '.join(missing)}"


def test_op_database_entries_name_public_primitives() -> None:
    stale = sorted({e.name for e in opdb.ENTRIES} - set(PUBLIC_NAMES))
    assert not stale, f"tests/opdb.py entries for unknown primitives: {' '.join(stale)}"
    wrong_row = [e.label for e in opdb.ENTRIES if lookup(e.name) is None or lookup(e.name).name != e.row]
    assert not wrong_row, f"entries whose row is not the one their name resolves to: {wrong_row}"


def test_the_reference_evaluator_has_every_public_name() -> None:
    missing = sorted(set(PUBLIC_NAMES) - set(refeval.PRIMITIVES))
    assert not missing, f"no entry in tests/refeval.py PRIMITIVES for: {' '.join(missing)}"
    stale = sorted(set(refeval.PRIMITIVES) - set(PUBLIC_NAMES))
    assert not stale, f"tests/refeval.py PRIMITIVES names no public row: {' '.join(stale)}"


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_the_reference_evaluator_has_the_tables_arity(name: str) -> None:
    lo, hi, _ = refeval.PRIMITIVES[name]
    assert (lo, hi) == TABLE[name].arity, f"refeval's arity of {name} differs from the table's"


def test_the_generator_names_every_public_row_or_says_why_not() -> None:
    generated = {n for r in strategies.GEN_PRIMITIVES for n in r.names} | set(strategies.GEN_BY_MAKERS)
    excluded = set(strategies.NOT_GENERATED)
    assert not generated & excluded, f"both generated and excluded: {sorted(generated & excluded)}"
    missing = sorted(set(PUBLIC_NAMES) - generated - excluded)
    assert not missing, f"tests/strategies.py neither generates nor excludes: {' '.join(missing)}"
    stale = sorted((generated | excluded) - set(PUBLIC_NAMES))
    assert not stale, f"tests/strategies.py names no public row: {' '.join(stale)}"


@pytest.mark.parametrize("gen", strategies.GEN_PRIMITIVES, ids=lambda r: r.names[0])
def test_generated_arities_are_within_the_tables(gen: strategies.GenPrim) -> None:
    for name in gen.names:
        lo, hi = TABLE[name].arity
        assert lo <= gen.arity[0] and (hi is None or gen.arity[1] <= hi), (name, gen.arity)


# ---- facts that are fields of the row --------------------------------------------------------------
def test_aliases_resolve_to_their_row() -> None:
    for row in table_rows():
        for key in (row.name, *row.aliases):
            assert lookup(key) is row


def test_comparisons_state_their_mask() -> None:
    for row in table_rows():
        if row.family == "comparison":
            assert row.mask and row.code == f"({row.mask}).to({{dt}})", row.name
        else:
            assert not row.mask, row.name


def test_internal_rows_are_not_callable() -> None:
    internal = [r for r in ROWS if not r.public]
    assert internal and all(r.name[0] in "%l" and lookup(r.name) is None for r in internal)
    assert "%nan" not in TABLE  # never recorded


# Internal rows (%ref, %roll: indices from data) are checked through ref/roll in tests/test_static_inputs.py.
DOMAIN_CASES = [(row, n, d) for row in ROWS if row.public for n, d in row.domains.items()]


def _domain_call(row: Primitive, nargs: int, domain: Domain) -> tuple[str, dict[str, torch.Tensor]]:
    names = [f"a{k}" for k in range(nargs)]
    values = {n: torch.tensor(v, dtype=F64) for n, v in zip(names, domain.outside)}
    return f"({row.name} {' '.join(names)})", values


@pytest.mark.parametrize(("row", "nargs", "domain"), DOMAIN_CASES,
                         ids=[f"{r.name}/{n}" for r, n, _ in DOMAIN_CASES])
def test_every_domain_is_checked(row: Primitive, nargs: int, domain: Domain) -> None:
    """A call outside each declared domain raises the row's message (so no rule can go unused)."""
    assert len(domain.outside) == nargs
    src, values = _domain_call(row, nargs, domain)
    shapes = {n: tuple(v.shape) for n, v in values.items() if v.dim()}
    f = nc.compile_fn(src, check_domain=True, shapes=shapes)
    with pytest.raises(nc.DomainError) as info:
        f(**values)
    shown = float(values[f"a{domain.shown}"].flatten()[0])
    assert info.value.message == f"{domain.message}: {row.name} got {shown:g}"
    # inside the domain (here: away from the offending element) nothing is raised
    nc.compile_fn(src, check_domain=False, shapes=shapes)(**values)


def test_errors_md_lists_exactly_the_checked_primitives() -> None:
    text = " ".join((DOCS / "errors.md").read_text().split())
    assert documented_list() in text, f"docs/errors.md: replace the list after 'Checked' by: {documented_list()}"


# ---- every recorded equation names a row -------------------------------------------------------
def _all_eqns(eqns: list[Eqn]) -> list[Eqn]:
    out, stack = [], list(eqns)
    while stack:
        e = stack.pop()
        out.append(e)
        if e.region is not None:
            stack.extend(e.region.eqns)
    return out


def _programs() -> list[list[Eqn]]:
    x = torch.tensor([0.5, -2.0, 3.0], dtype=F64)
    u = torch.ones(3, 2, dtype=F64)
    net = torch.nn.Linear(2, 1).double()
    sources = [
        ("(if (> x 0) (sqrt x) (log (- x)))", {"x": x}, {}),
        ("(if x (* x 2) 1)", {"x": x}, {}),
        ("(loop ((i x) (n 0)) (if (< i 1) n (recur (/ i 2) (+ n 1))))", {"x": x.abs() + 1}, {}),
        ("(if (> (vsum u) 0) (vlen u) (vmax u))", {"u": u}, {}),
        ("(if (> u 0) (* x u) 0)", {"x": x, "u": u}, {"shapes": {"u": (2,)}}),  # a vector mask, a scalar x
        ("(euler (lambda (t y) (* t y)) x 0.1 2)", {"x": x}, {}),
        ("(rk4 (lambda (t y) (* -0.5 y)) x 0.1 20)", {"x": x}, {}),  # over 16 steps: one %scan step
        ("(loop ((i 0) (y x)) (if (< i 20) (recur (+ i 1) (* 0.9 y)) y))", {"x": x}, {}),  # rolled: %item
        ("(+ (* x (ref (drag u) 0)) 1)", {"x": x, "u": u}, {"modules": {"drag": net}, "shapes": {"u": (2,)}}),
        ("(+ (ref u i) (vsum (roll u i)))", {"u": u, "i": x.abs().round()}, {"shapes": {"u": (2,)}}),
        ("(define (f n) (if (< n 1) 0 (+ 1 (f (- n 1))))) (f x)", {"x": x}, {}),
    ]
    programs = []
    for src, args, options in sources:
        f = nc.compile_fn(src, check_domain="drag" not in src, **options)
        programs.append(f.program(**args).eqns)
    return programs


def test_every_recorded_equation_names_a_row() -> None:
    seen = set()
    for eqns in _programs():
        for e in _all_eqns(eqns):
            row = recorded_row(e.prim)
            seen.add(row.name)
            if not row.public and isinstance(row.code, str) and row.name not in ("%truth", "%truth[]"):
                assert e.code == row.code, (e.prim, e.code)  # recorded with the row's own template
    internal = {r.name for r in ROWS if not r.public}
    # %vlen: recorded only while sizes are unknown (the compile-time pass), never in a called program
    assert internal - seen == {"%vlen"}, sorted(internal - seen)


def test_a_recorded_truth_of_a_comparison_uses_its_mask() -> None:
    eqns = nc.compile_fn("(if (<= x 1) x 0)").program(torch.tensor([2.0], dtype=F64)).eqns
    truth = next(e for e in eqns if e.prim.startswith("%truth["))
    assert truth.prim == "%truth[<=]" and recorded_row(truth.prim).name == "%truth[]"
    assert truth.code == TABLE["<="].mask


def test_no_primitive_is_dispatched_by_name_outside_the_table() -> None:
    """Per-primitive behaviour is a field of the row: no ``prim.name == "..."`` in the tracer."""
    source = Path(nc.__file__).resolve().parent
    offenders = [f"{p.name}:{k + 1}" for p in sorted(source.glob("*.py")) if p.name != "primitives.py"
                 for k, line in enumerate(p.read_text().splitlines())
                 if re.search(r"prim(itive)?\.name\s*(==|!=|in)\s*[\"'(]", line)]
    assert not offenders, offenders
