"""Parameters under the program's names (issue 8, issue 12.2): any legal name, every API.md
module guarantee with such names, old state-dict keys, learned components under their names."""

from __future__ import annotations

import copy
import io
import re

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

import nc
from nc.module import NcModule

F64 = torch.float64
LEGAL = re.compile(r"^[A-Za-z0-9!$%&*/:<=>?^_~+\-@]+$")  # LANGUAGE.md section 1 (no '.': a read error)


def roundtrip(obj, **load_kwargs):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, **load_kwargs)


def clashing_names() -> list[str]:
    """Every attribute of an NcModule (class and instance) that is a legal program name."""
    instance = vars(nc.compile("(* a x)", params={"a": 1.0}))
    return sorted({n for n in [*dir(NcModule), *instance] if LEGAL.match(n)})


ODD = ["g/L", "v->x", "a-b", "?", "x!", "half", "type", "to", "float", "forward", "eval", "params",
       "training", "source", "inputs", "learned", "_parameters", "__init__", "state_dict"]


def test_there_are_many_clashing_names():
    names = clashing_names()
    assert len(names) > 100 and {"half", "to", "type", "float", "forward", "eval", "training"} <= set(names)


def test_every_attribute_name_of_the_module_works_as_a_parameter():
    names = clashing_names()
    src = "(+ x " + " ".join(f"(* {k + 1} {n})" for k, n in enumerate(names)) + ")"
    model = nc.compile(src, params={n: 1.0 for n in names}, dtype=F64)
    assert model.inputs == ("x",) and model.param_names == tuple(names)
    assert [n for n, _ in model.named_parameters()] == names
    assert list(model.state_dict()) == names
    expected = 1 + sum(range(1, len(names) + 1))
    assert model(torch.tensor(1.0, dtype=F64)).item() == expected
    # the module's own attributes are untouched
    assert callable(model.half) and callable(model.to) and model.training is True
    assert isinstance(model.params["half"], nn.Parameter)
    model.eval()
    assert model.training is False and isinstance(model.params["training"], nn.Parameter)


def test_trainable_defines_with_clashing_names():
    model = nc.compile("(define half 0.5)\n(define type 2)\n(* half type x)", trainable=["half", "type"])
    assert model.params["half"].item() == 0.5 and model.params["type"].item() == 2.0
    assert model(3.0).item() == 3.0
    assert model.half is not model.params["half"]  # the method wins attribute access (API.md)


@pytest.mark.parametrize("name", ODD)
def test_every_guarantee_of_api_md_with_an_odd_name(name):
    src = f"(define {name} 2.0)\n(* {name} (sin x))"
    model = nc.compile(src, trainable=[name]).double()
    x = torch.linspace(0, 1, 5, dtype=F64)
    want = 2.0 * torch.sin(x)
    assert torch.equal(model(x), want)
    # state_dict / load_state_dict with weights_only=True
    state = roundtrip(model.state_dict(), weights_only=True)
    assert list(state) == [name]
    fresh = nc.compile(src, trainable=[name]).double()
    with torch.no_grad():
        fresh.params[name].fill_(7.0)
    fresh.load_state_dict(state)
    assert fresh.params[name].item() == 2.0
    # functional_call and vmap over stacked parameter values
    values = torch.tensor([0.5, 1.0, 3.0], dtype=F64)
    batched = vmap(lambda v: functional_call(model, {name: v}, (x,)))(values)
    assert torch.equal(batched, values[:, None] * torch.sin(x))
    assert model.params[name].item() == 2.0
    g = grad(lambda p: functional_call(model, p, (x,)).sum())({name: torch.tensor(2.0, dtype=F64)})
    assert torch.allclose(g[name], torch.sin(x).sum(), rtol=1e-15)
    # .to / .double / deepcopy / pickling
    assert model.to(torch.float32)(x.float()).dtype == torch.float32
    model.double()
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone.params[name].fill_(5.0)
    assert model.params[name].item() == 2.0 and torch.equal(clone(x), 5.0 * torch.sin(x))
    loaded = roundtrip(model, weights_only=False)
    assert type(loaded) is NcModule and loaded.params[name].dtype == F64 and torch.equal(loaded(x), want)
    # parameters() feeds an optimiser
    assert [p for p in model.parameters()] == [model.params[name]]


def test_functional_call_vmap_over_stacked_parameters_with_several_names():
    model = nc.compile("(/ (* G m1 m2) (* r r))", params={"G": 1.0}).double()
    gen = torch.Generator().manual_seed(0)
    m1, m2, r = torch.rand(3, 6, generator=gen, dtype=F64) + 0.5
    Gs = torch.tensor([0.5, 1.0, 6.674], dtype=F64)
    out = torch.func.vmap(lambda G: functional_call(model, {"G": G}, (m1, m2, r)))(Gs)
    for i, G in enumerate(Gs):
        assert torch.equal(out[i], G * m1 * m2 / (r * r))


def test_params_is_a_read_only_view():
    model = nc.compile("(* g/L x)", params={"g/L": 2.0})
    assert list(model.params) == ["g/L"] and len(model.params) == 1 and "g/L" in model.params
    with pytest.raises(TypeError):
        model.params["g/L"] = nn.Parameter(torch.tensor(1.0))  # type: ignore[index]
    with pytest.raises(KeyError):
        model.params["x"]


def test_assigning_a_number_to_a_parameter_attribute_is_a_call_error():
    model = nc.compile("(* G x)", params={"G": 2.0})
    with pytest.raises(nc.CallError) as info:
        model.G = 5.0
    assert "copy_" in info.value.message
    model.G = nn.Parameter(torch.tensor(4.0))
    assert model(1.0).item() == 4.0


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))


HYBRID = "(define G 1.5)\n(- (* G x) (ref (drag [x]) 0))"


def test_learned_components_appear_under_their_own_names():
    model = nc.compile(HYBRID, trainable=["G"], modules={"drag": mlp()})
    names = [n for n, _ in model.named_parameters()]
    assert names == ["G", "drag.0.weight", "drag.0.bias", "drag.2.weight", "drag.2.bias"]
    assert list(model.state_dict()) == names
    assert model.drag is model.learned["drag"]
    x = torch.linspace(0, 1, 4)
    zero = {k: torch.zeros_like(v) for k, v in model.named_parameters() if k.startswith("drag.")}
    out = functional_call(model, {"G": torch.tensor(2.0), **zero}, (x,))
    assert torch.equal(out, 2.0 * x)
    loaded = roundtrip(model, weights_only=False)
    assert torch.equal(loaded(x), model(x))


def test_state_dicts_with_the_old_keys_still_load():
    model = nc.compile(HYBRID, trainable=["G"], modules={"drag": mlp(1)})
    old = {("params." + k if k == "G" else "learned." + k): v.clone() + 1 for k, v in model.state_dict().items()}
    fresh = nc.compile(HYBRID, trainable=["G"], modules={"drag": mlp(2)})
    fresh.load_state_dict(old)
    assert fresh.G.item() == 2.5
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v + 1)
    with pytest.raises(RuntimeError):  # strict loading still names wrong keys
        fresh.load_state_dict({"params.H": torch.tensor(1.0)})


def test_dtype_casts_learned_modules_too():
    net = mlp()
    model = nc.compile(HYBRID, trainable=["G"], modules={"drag": net}, dtype=F64)
    assert model.G.dtype == F64 and all(p.dtype == F64 for p in net.parameters())
    assert model(torch.linspace(0, 1, 3, dtype=F64)).dtype == F64


@pytest.mark.parametrize("module_shapes", [None, {"drag": (1,)}])
def test_a_dtype_clash_with_a_learned_module_is_one_clear_error(module_shapes):
    model = nc.compile(HYBRID, trainable=["G"], modules={"drag": mlp()}, module_shapes=module_shapes)
    with pytest.raises(nc.CallError) as info:
        model(torch.linspace(0, 1, 3, dtype=F64))
    err = info.value
    assert "'drag'" in err.message and "float32" in err.message and "float64" in err.message
    assert (err.line, err.column) == (2, 17) and "dtype=" in err.hint
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


@pytest.mark.parametrize("kwargs, words", [
    ({"modules": {"drag": lambda t: t}}, "modules['drag'] must be a torch.nn.Module, got function"),
    ({"modules": [mlp()]}, "modules= must be a dict"),
    ({"modules": {"drag": mlp()}, "module_shapes": {"drg": (1,)}}, "module_shapes= names 'drg'"),
    ({"modules": {"drag": mlp()}, "module_shapes": {"drag": (1.5,)}}, "module_shapes['drag'] must be"),
    ({"modules": {"drag": mlp()}, "module_shapes": {"drag": (-1,)}}, "module_shapes['drag'] must be"),
    ({"modules": {"drag": mlp()}, "module_shapes": {"drag": 3}}, "module_shapes['drag'] must be"),
    ({"dtype": torch.int64}, "dtype= must be a floating torch.dtype"),
    ({"params": [("x", 1.0)]}, "params= must be a dict"),
])
def test_bad_module_options_are_call_errors(kwargs, words):
    with pytest.raises(nc.CallError) as info:
        nc.compile("(ref (drag [x]) 0)", **kwargs)
    assert info.value.message.startswith(words)


def test_a_module_on_the_meta_device():
    model = nc.compile("(define G 2.0)\n(* G x)", trainable=["G"]).to("meta")
    with pytest.raises(nc.CallError) as info:
        model.to_source()
    assert "meta" in info.value.message
    loaded = roundtrip(model, weights_only=False)
    assert loaded.G.device.type == "meta" and loaded.G.shape == ()
    loaded.to_empty(device="cpu")
    loaded.load_state_dict({"G": torch.tensor(3.0)})
    assert loaded(2.0).item() == 6.0


def test_help_of_compile_documents_every_keyword():
    import inspect

    doc = nc.compile.__doc__
    for key in inspect.signature(NcModule.__init__).parameters:
        if key not in ("self", "src"):
            assert f"        {key}: " in doc, key


def test_an_unknown_compile_option_is_a_call_error_with_a_suggestion():
    with pytest.raises(nc.CallError) as info:
        nc.compile("(* G x)", params={"G": 1.0}, dtyp=F64)
    assert "'dtyp'" in info.value.message and info.value.hint == "did you mean 'dtype'?"


def test_compile_fn_checks_modules_too():
    with pytest.raises(nc.CallError) as info:
        nc.compile_fn("(ref (drag [x]) 0)", modules={"drag": lambda t: t})
    assert info.value.message.startswith("modules['drag'] must be a torch.nn.Module")
