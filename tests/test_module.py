"""`nc.compile` and `NcModule` (API.md): parameters, training, state, pickling, transforms."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

import nc
from nc.module import NcModule

F64 = torch.float64

GRAVITY = """
(define G 1.0)                              ; unknown: trainable, starts at 1.0
(define (inv-square k a b r) (/ (* k a b) (* r r)))
(inv-square G m1 m2 r)
"""


def data(n=50, seed=0):
    gen = torch.Generator().manual_seed(seed)
    m1, m2, r = torch.rand(3, n, generator=gen) + 0.5
    return m1, m2, r


def roundtrip(obj, **load_kwargs):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, **load_kwargs)


# ---- construction -------------------------------------------------------------------------------
def test_params_make_free_names_parameters():
    model = nc.compile("(* G x)", params={"G": 3.0})
    assert isinstance(model, nn.Module) and isinstance(model, NcModule)
    assert isinstance(model.G, nn.Parameter)
    assert model.G is model.params["G"]
    assert model.G.item() == 3.0 and model.G.requires_grad
    assert model.inputs == ("x",)
    assert [n for n, _ in model.named_parameters()] == ["G"]
    assert model(2.0).item() == 6.0
    assert model(x=2.0).item() == 6.0


def test_trainable_makes_top_level_defines_parameters():
    model = nc.compile(GRAVITY, trainable=["G"])
    assert model.inputs == ("m1", "m2", "r")
    assert model.G.item() == 1.0
    assert model.G.dtype == torch.get_default_dtype()
    m1, m2, r = data()
    assert torch.equal(model(m1, m2, r), (1.0 * m1 * m2) / (r * r))
    assert model(m1, m2, r).shape == (50,)


def test_trainable_constant_defined_by_an_expression():
    model = nc.compile("(define k (* 2 (+ 1 0.5)))\n(* k x)", trainable=["k"])
    assert model.k.item() == 3.0


def test_vector_parameters():
    model = nc.compile("(define w [1 2 3])\n(dot w u)", trainable=["w"])
    assert model.w.shape == (3,)
    assert model(torch.ones(4, 3)).tolist() == [6.0] * 4
    model2 = nc.compile("(dot w u)", params={"w": torch.tensor([1.0, 0.0, 2.0])})
    assert model2(torch.tensor([[1.0, 1.0, 1.0]])).tolist() == [3.0]


def test_params_and_trainable_together():
    model = nc.compile("(define k 2)\n(* k a x)", trainable=["k"], params={"a": 5.0})
    assert set(model.params) == {"k", "a"}
    assert model.inputs == ("x",)
    assert model(1.0).item() == 10.0


def test_parameter_name_that_is_not_an_identifier():
    model = nc.compile("(* g/L x)", params={"g/L": 2.0})
    assert model.params["g/L"].item() == 2.0
    assert model(3.0).item() == 6.0


def test_unknown_params_name_is_an_error():
    with pytest.raises(nc.CallError) as info:
        nc.compile("(* G x)", params={"H": 1.0})
    assert "'H'" in info.value.message and "G, x" in info.value.message


def test_unknown_trainable_name_is_an_error_with_a_suggestion():
    with pytest.raises(nc.CallError) as info:
        nc.compile(GRAVITY, trainable=["GG"])
    assert "'GG'" in info.value.message
    assert info.value.hint == "did you mean 'G'?"


def test_trainable_function_is_an_error():
    with pytest.raises(nc.NCError):
        nc.compile(GRAVITY, trainable=["inv-square"])


def test_trainable_define_that_depends_on_inputs_is_an_nc_error():
    with pytest.raises(nc.NCError):
        nc.compile("(define G x)\n(* G 2)", trainable=["G"])


# ---- training -----------------------------------------------------------------------------------
def test_optimizer_step_changes_the_parameter():
    model = nc.compile(GRAVITY, trainable=["G"])
    m1, m2, r = data()
    target = 6.674 * m1 * m2 / r**2
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = model.G.item()
    loss = ((model(m1, m2, r) - target) ** 2).mean()
    loss.backward()
    expected_grad = (2 * (model.G.detach() * m1 * m2 / r**2 - target) * m1 * m2 / r**2).mean()
    assert torch.allclose(model.G.grad, expected_grad, rtol=1e-5)
    opt.step()
    assert model.G.item() == pytest.approx(before - 0.01 * expected_grad.item(), rel=1e-5)


def test_adam_recovers_the_constant():
    model = nc.compile(GRAVITY, trainable=["G"]).double()
    m1, m2, r = (t.double() for t in data())
    target = 6.674 * m1 * m2 / r**2
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss = ((model(m1, m2, r) - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert model.G.item() == pytest.approx(6.674, rel=1e-3)


# ---- state --------------------------------------------------------------------------------------
def test_state_dict_round_trip_with_weights_only():
    model = nc.compile(GRAVITY, trainable=["G"])
    with torch.no_grad():
        model.G.fill_(4.25)
    state = roundtrip(model.state_dict(), weights_only=True)
    assert list(state) == ["G"]
    fresh = nc.compile(GRAVITY, trainable=["G"])
    assert fresh.G.item() == 1.0
    fresh.load_state_dict(state)
    assert fresh.G.item() == 4.25
    m1, m2, r = data()
    assert torch.equal(fresh(m1, m2, r), model(m1, m2, r))


def test_load_state_dict_rejects_wrong_keys():
    model = nc.compile(GRAVITY, trainable=["G"])
    with pytest.raises(RuntimeError):
        model.load_state_dict({"H": torch.tensor(1.0)})


def test_pickling_the_whole_module():
    model = nc.compile(GRAVITY, trainable=["G"], max_iter=17)
    with torch.no_grad():
        model.G.fill_(2.5)
    model.eval()
    loaded = roundtrip(model, weights_only=False)
    assert type(loaded) is NcModule
    assert loaded.G.item() == 2.5 and isinstance(loaded.G, nn.Parameter)
    assert loaded.inputs == model.inputs
    assert loaded.training is False
    assert loaded.options.max_iter == 17
    m1, m2, r = data()
    assert torch.equal(loaded(m1, m2, r), model(m1, m2, r))


def test_pickling_keeps_requires_grad_and_params_given_by_value():
    model = nc.compile("(define k 2)\n(* k a x)", trainable=["k"], params={"a": 5.0})
    model.params["a"].requires_grad_(False)
    loaded = roundtrip(model, weights_only=False)
    assert loaded.params["a"].item() == 5.0 and not loaded.params["a"].requires_grad
    assert loaded.k.requires_grad
    assert loaded(1.0).item() == 10.0


def test_deepcopy():
    model = nc.compile(GRAVITY, trainable=["G"])
    clone = copy.deepcopy(model)
    assert clone.G is not model.G
    with torch.no_grad():
        clone.G.fill_(9.0)
    assert model.G.item() == 1.0
    m1, m2, r = data()
    assert torch.equal(clone(m1, m2, r), 9.0 * m1 * m2 / (r * r))


def test_double_and_to_float32():
    model = nc.compile(GRAVITY, trainable=["G"])
    model.double()
    assert model.G.dtype == F64
    m1, m2, r = (t.double() for t in data())
    assert model(m1, m2, r).dtype == F64
    model.to(torch.float32)
    assert model.G.dtype == torch.float32
    assert model(*(t.float() for t in (m1, m2, r))).dtype == torch.float32


# ---- transforms ---------------------------------------------------------------------------------
def test_functional_call_and_vmap_over_parameter_sets_equal_a_loop():
    model = nc.compile(GRAVITY, trainable=["G"]).double()
    m1, m2, r = (t.double() for t in data(8))
    Gs = torch.tensor([0.5, 1.0, 6.674], dtype=F64)

    def call(G):
        return functional_call(model, {"G": G}, (m1, m2, r))

    batched = vmap(call)(Gs)
    assert batched.shape == (3, 8)
    for i, G in enumerate(Gs):
        assert torch.equal(batched[i], call(G))
        assert torch.equal(batched[i], G * m1 * m2 / (r * r))
    assert model.G.item() == 1.0  # functional_call does not touch the module


def test_grad_through_functional_call():
    model = nc.compile("(* G (sin x))", params={"G": 2.0}).double()
    x = torch.linspace(0, 1, 5, dtype=F64)

    def loss(params):
        return functional_call(model, params, (x,)).sum()

    g = grad(loss)({"G": torch.tensor(2.0, dtype=F64)})
    assert torch.allclose(g["G"], torch.sin(x).sum(), rtol=1e-15)


# ---- to_source ----------------------------------------------------------------------------------
def test_to_source_rebuilds_an_equal_module():
    model = nc.compile(GRAVITY, trainable=["G"])
    with torch.no_grad():
        model.G.fill_(6.674)
    src = model.to_source()
    assert f"(define G {model.G.item()!r})" in src
    assert src.count("(define G") == 1
    rebuilt = nc.compile(src, trainable=["G"])
    assert rebuilt.G.dtype == model.G.dtype
    assert rebuilt.G.item() == model.G.item()
    m1, m2, r = data()
    assert torch.equal(rebuilt(m1, m2, r), model(m1, m2, r))
    assert rebuilt.to_source() == src


def test_to_source_round_trip_of_a_float64_module_under_float64_default():
    model = nc.compile(GRAVITY, trainable=["G"]).double()
    with torch.no_grad():
        model.G.fill_(6.674000000000001)
    src = model.to_source()
    assert "(define G 6.674000000000001)" in src
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        rebuilt = nc.compile(src, trainable=["G"])
    finally:
        torch.set_default_dtype(old)
    assert rebuilt.G.dtype == F64 and rebuilt.G.item() == model.G.item()


def test_to_source_of_a_float64_module_rebuilds_an_equal_module():
    # Parameters are made in `dtype` (default: the default dtype); a float64 module is rebuilt
    # exactly by asking for float64 parameters.
    model = nc.compile(GRAVITY, trainable=["G"], dtype=F64)
    assert model.G.dtype == F64
    with torch.no_grad():
        model.G.fill_(6.674000000000001)
    rebuilt = nc.compile(model.to_source(), trainable=["G"], dtype=F64)
    assert rebuilt.G.item() == model.G.item()


def test_to_source_full_precision_of_a_float32_parameter():
    model = nc.compile(GRAVITY, trainable=["G"])
    with torch.no_grad():
        model.G.fill_(0.1)
    rebuilt = nc.compile(model.to_source(), trainable=["G"])
    assert rebuilt.G.item() == model.G.item()


def test_to_source_of_params_given_by_value():
    model = nc.compile("(* G (dot w u))", params={"G": 3.0, "w": torch.tensor([1.0, -2.0, 0.5])})
    src = model.to_source()
    rebuilt = nc.compile(src, trainable=list(model.param_names))
    assert rebuilt.inputs == model.inputs
    for n in model.param_names:
        assert torch.equal(rebuilt.params[n], model.params[n])
    u = torch.rand(4, 3)
    assert torch.equal(rebuilt(u), model(u))


def test_to_source_keeps_other_definitions_and_comments_out_of_the_way():
    src = "; header\n(define a 1.5)\n(define b 2)\n(* a b x)"
    model = nc.compile(src, trainable=["a"])
    out = model.to_source()
    assert "(define b 2)" in out and out.count("(define a") == 1
    assert nc.compile(out, trainable=["a"])(2.0).item() == 6.0
