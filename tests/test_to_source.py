"""`NcModule.to_source`: values in place (comments and layout kept), bit for bit (issue 8)."""

from __future__ import annotations

import math

import pytest
import torch

import nc
from nc.writeback import bits

SPECIALS = [0.0, -0.0, 1.0, -2.5, 0.1, 1 / 3, math.pi, 6.674e-11, 1e300, -1e-300, math.inf, -math.inf,
            5e-324, 2.2250738585072014e-308, 1.401298464324817e-45, 1.1754942106924411e-38,
            3.4028234663852886e38, 1.7976931348623157e308, 123456789.0, -7e22]


def nan(sign: int, dtype: torch.dtype) -> torch.Tensor:
    t = torch.tensor(math.nan, dtype=dtype).abs()
    return -t if sign < 0 else t


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and all(
        bits(x) == bits(y) for x, y in zip(a.reshape(-1), b.reshape(-1)))


def values(dtype: torch.dtype) -> list[torch.Tensor]:
    out = [torch.tensor(v, dtype=torch.float64).to(dtype) for v in SPECIALS]
    out += [nan(1, dtype), nan(-1, dtype)]
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(-(2**31), 2**31, (200,), generator=gen, dtype=torch.int64)
    if dtype == torch.float32:  # random bit patterns, NaNs with odd payloads left out
        out += [x for x in raw.to(torch.int32).view(torch.float32) if not math.isnan(float(x))]
    else:
        pats = (raw << 32) | torch.randint(0, 2**31, (200,), generator=gen, dtype=torch.int64)
        out += [x for x in pats.view(torch.float64) if not math.isnan(float(x))]
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_scalar_value_round_trips_bit_for_bit(dtype):
    vals = values(dtype)
    names = [f"p{i}" for i in range(len(vals))]
    src = "".join(f"(define {n} 1.0)  ; unknown {n}\n" for n in names) + "(+ x " + " ".join(names) + ")"
    model = nc.compile(src, trainable=names, dtype=dtype)
    with torch.no_grad():
        for n, v in zip(names, vals):
            model.params[n].copy_(v)
    text = model.to_source()
    rebuilt = nc.compile(text, trainable=names, dtype=dtype)
    for n, v in zip(names, vals):
        assert same_bits(rebuilt.params[n].detach(), v), (n, v, text.splitlines()[names.index(n)])
    assert rebuilt.to_source() == text


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(0,), (3,), (2, 3), (3, 1), (1, 1), (2, 0)])
def test_vectors_and_matrices_round_trip(dtype, shape):
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    if w.numel():
        w.reshape(-1)[0] = -0.0
    src = "(vsum (* w u))" if len(shape) == 1 else "(vsum (vsum (* w u)))"
    model = nc.compile(src, params={"w": w}, dtype=dtype)
    rebuilt = nc.compile(model.to_source(), trainable=["w"], dtype=dtype)
    assert same_bits(rebuilt.w.detach(), w)


@pytest.mark.parametrize("value, words", [
    (torch.zeros(2, 2, 2), "rank-3 tensor"),
    (torch.zeros(0, 3), "a matrix with no rows"),
    (torch.tensor(0x7FC00001, dtype=torch.int32).view(torch.float32), "non-default payload"),
])
def test_values_nc_cannot_write_are_clear_errors(value, words):
    model = nc.compile("(* w u)", params={"w": value})
    with pytest.raises(nc.CallError) as info:
        model.to_source()
    assert words in info.value.message and "'w'" in info.value.message


def test_values_are_rewritten_in_place_keeping_comments_and_layout():
    src = ("; gravity with a fitted constant\n"
           "(define G 1.0)          ; unknown: trainable, starts at 1.0\n"
           "\n"
           "(define (inv-square k a b r)\n"
           "  (/ (* k a b) (* r r)))  ; the law\n"
           "(define c (* 2\n"
           "             3))  ; spans lines\n"
           "(inv-square (* G c) m1 m2 r)\n")
    model = nc.compile(src, trainable=["G", "c"], params={}, dtype=torch.float64)
    with torch.no_grad():
        model.G.fill_(6.674)
        model.c.fill_(0.5)
    out = model.to_source()
    assert out == src.replace("(define G 1.0)", "(define G 6.674)").replace("(* 2\n             3)", "0.5")


def test_free_names_given_by_params_get_a_define_at_the_top():
    src = "; header\n(define a 1.5)  ; kept\n(* a b x)"
    model = nc.compile(src, trainable=["a"], params={"b": 2.0})
    assert model.to_source() == "(define b 2.0)\n; header\n(define a 1.5)  ; kept\n(* a b x)"
