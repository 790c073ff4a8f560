"""The dispatch tables of the tracer and the parser name every node type and every special form."""

from __future__ import annotations

import torch

import nc
from nc import ir
from nc.forms import SPECIAL_FORMS
from nc.parse import parse
from nc.scope import RESERVED
from nc.trace import RULES, constant_value


def test_every_ir_node_type_has_a_tracing_rule() -> None:
    node_types = set(ir.Expr.__subclasses__())
    assert node_types == set(RULES), f"missing: {node_types - set(RULES)}, extra: {set(RULES) - node_types}"


def test_every_reserved_name_but_else_is_a_special_form() -> None:
    assert set(SPECIAL_FORMS) == RESERVED - {"else"}
    assert all(f.__doc__ and f.__doc__.startswith("(") for f in SPECIAL_FORMS.values())


def test_constant_value_of_a_top_level_constant() -> None:
    program = parse("(define k (* 2 (sqrt 4))) (define g (* k x)) (+ g k)")
    value = constant_value(program, "k")
    assert isinstance(value, torch.Tensor) and float(value) == 4.0
    assert not isinstance(constant_value(program, "g"), torch.Tensor)  # depends on the input x


def test_rules_can_be_extended_without_subclassing() -> None:
    f = nc.compile_fn("(let ((v (* 2 x))) (+ v 1))")
    out = nc.intermediates(f, torch.tensor(3.0))
    assert [float(v) for v in out.values()] == [6.0, 7.0]
