"""`nc reproduce`: the statistics, the domain rule of the Feynman extrapolation, the command's
usage errors, and (slow) the whole ``--quick`` run end to end: its files, the schema of
results.json and the compiled models' numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from nc.cli import main
from nc.errors import CallError
from nc.experiments import EXPERIMENTS
from nc.experiments.feynman import EQUATIONS, scaled_ranges
from nc.experiments.report import require
from nc.experiments.runner import config, reproduce
from nc.experiments.stats import quantile, summarise


def test_summarise_median_spread_and_fractions() -> None:
    s = summarise([0.001, 0.004, 0.006, 0.02, math.nan])
    assert s["n"] == 5 and s["nonfinite"] == 1
    assert s["median"] == pytest.approx(0.005) and s["q25"] == pytest.approx(0.00325)
    assert s["iqr"] == pytest.approx(s["q75"] - s["q25"])
    assert s["within_1pct"] == pytest.approx(3 / 5) and s["within_0.5pct"] == pytest.approx(2 / 5)
    assert quantile([], 0.5) != quantile([], 0.5)  # NaN for no values
    assert "within_1pct" not in summarise([1.0, 2.0], relative=False)


def test_domain_rule_keeps_positive_inputs_positive_and_v_below_c() -> None:
    ranges = dict(next(r for i, _, r, _ in EQUATIONS if i == "lorentz"))
    at5 = scaled_ranges(ranges, 5, {"c": 3.0})
    assert at5["m0"] == (0.5 / 5, 2.75 + 2.25 * 5)  # the upper end scaled, the lower clipped to lo/scale
    assert at5["v"][0] == pytest.approx(0.02) and at5["v"][1] < 3.0
    hooke = scaled_ranges({"x": (-3.0, 3.0)}, 2, {})
    assert hooke["x"] == (-6.0, 6.0)  # a range that crosses zero is scaled as it is


def test_missing_extra_names_it() -> None:
    with pytest.raises(CallError, match=r"nc\[experiments\]"):
        require("surely_not_an_installed_module_xyz")


def test_unknown_experiment_and_bad_seeds_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "nonsense", "--quick"]) == 2
    assert "unknown experiment 'nonsense'" in capsys.readouterr().err
    assert main(["reproduce", "--seeds", "0"]) == 2


def needs_experiments_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip (saying which) when an optional dependency of ``nc reproduce`` is missing."""
    reason = "nc reproduce needs the experiments extra (pip install 'nc[experiments]'): {} is not installed"
    for module in ("torchdiffeq", "matplotlib"):
        pytest.importorskip(module, reason=reason.format(module))
    # imported as nc imports it: on the PyTorch backend, chosen by the environment so that
    # DeepXDE writes no ~/.deepxde/config.json (monkeypatch puts the environment back)
    monkeypatch.setenv("DDE_BACKEND", "pytorch")
    pytest.importorskip("deepxde", reason=reason.format("deepxde"))


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs_experiments_extra(monkeypatch)
    out = tmp_path / "quick"
    assert main(["reproduce", "--quick", "--out", str(out), "--no-progress"]) == 0
    check_quick_results(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quick"]  # nothing written beside --out


def scrub(x: Any) -> Any:
    """results.json without what a rerun may change: timings, dates, the progress of time."""
    if isinstance(x, dict):
        return {k: scrub(v) for k, v in x.items() if k not in {"seconds", "wall_s", "experiment_s", "started"}}
    if isinstance(x, list):
        return [scrub(v) for v in x]
    return x


@pytest.mark.slow
def test_reproduce_is_deterministic_per_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # heat trains a DeepXDE PINN (seeded by DeepXDE) and the networks; vector the MLPs and hybrid.
    # The second run finds DeepXDE imported and the compiled programs cached: the same numbers.
    needs_experiments_extra(monkeypatch)
    dtype = torch.get_default_dtype()
    cfg = config(1, True)
    runs = [reproduce(["heat", "vector"], cfg, tmp_path / f"run{i}", progress=False) for i in (1, 2)]
    assert all("error" not in r for run in runs for r in run["experiments"].values())
    assert scrub(runs[0]) == scrub(runs[1])
    # DeepXDE's float64 switch does not leak: later networks are initialised as without a PINN before
    assert torch.get_default_dtype() == dtype


def check_quick_results(out: Path) -> None:
    results = json.loads((out / "results.json").read_text())
    assert (out / "report.md").is_file()
    meta = results["meta"]
    assert meta["quick"] is True and meta["seeds"] == [1000, 1001] and meta["wall_s"] > 0
    assert set(results["experiments"]) == set(EXPERIMENTS)
    for name, res in results["experiments"].items():
        assert "error" not in res, (name, res.get("error"))
        assert res["headline"] and res["entries"] and res["seeds"] == [1000, 1001]
        for e in res["entries"]:
            assert {"method", "quantity", "values", "seeds", "stats", "seconds", "params"} <= set(e)
            assert e["values"] and set(e["seeds"]) <= set(meta["seeds"]) | {0}  # 0: deterministic entries
        for fig in res["figures"]:
            assert (out / fig).stat().st_size > 1000, fig
    ex = results["experiments"]
    # the compiled models' numbers, in quick mode too
    assert ex["feynman"]["within_1pct_fraction"] == 1.0  # every constant of all 15 equations within 1%
    bits = [e for e in ex["feynman"]["entries"] if "bit-identical" in e["quantity"]]
    assert len(bits) == 15 and all(e["stats"]["min"] == 1.0 for e in bits)
    comp = ex["composition"]["entries"][0]
    assert comp["stats"]["min"] == 1.0  # every chain at every range bit-identical

    def compiled(name: str, quantity: str) -> dict[str, float]:
        return next(e for e in ex[name]["entries"] if e["method"].startswith("nc compiled")
                    and e["quantity"] == quantity)["stats"]

    assert compiled("heat", "alpha error")["max"] < 1e-8
    assert compiled("vector", "G error, 2% noise")["max"] < 0.005
    assert compiled("lotka_volterra", "max parameter error, 2% noise")["max"] < 0.02
    assert compiled("pendulum", "max parameter error, 2% noise")["max"] < 0.01
    check_hybrids(ex)


def check_hybrids(ex: dict[str, Any]) -> None:
    """The hybrids, fitted alike: the identifiable ones recover their constant to the noise level,
    the paper's pendulum hybrid fits the data as well with g/L far off."""
    def stats(name: str, method: str, quantity: str) -> dict[str, float]:
        return next(e for e in ex[name]["entries"] if e["method"].startswith(method)
                    and e["quantity"] == quantity)["stats"]

    gl = "neg_g_over_L error, 2% noise"
    assert stats("pendulum", "hybrid, identifiable", gl)["max"] < 0.002
    assert stats("pendulum", "hybrid (paper), fitted", gl)["min"] > 0.1
    for method in ("hybrid, identifiable", "hybrid (paper), fitted"):  # both fit the data to the noise
        assert 0.5 < stats("pendulum", method, "final loss / noise variance")["max"] < 2
    drag = "G error with drag, 1% noise"
    assert stats("vector", "hybrid, isotropic drag", drag)["max"] < 0.002
    assert stats("vector", "reference: compiled gravity + drag law", drag)["max"] < 0.002


class FakeExperiment:
    """A stand-in experiment module (registered as ``nc.experiments.<name>``): instant, and it
    counts how often its figures are drawn."""

    def __init__(self, name: str) -> None:
        self.name, self.drawn = name, 0

    def run(self, cfg: Any, bar: Any) -> dict[str, Any]:
        from nc.experiments.common import entry
        values = [0.001 * (s - 999) for s in cfg.seeds]
        return {"entries": [entry("nc compiled", "error", values, cfg.seeds),  # NaN: written "nan", read back
                            entry("baseline", "error", [math.nan, math.inf][:len(values)], cfg.seeds)],
                "notes": [],
                "headline": [{"quantity": "error", "paper": "-", "nc": f"{len(values)} seeds", "spread": "-"}],
                "plot": {"values": values}}

    def figures(self, res: dict[str, Any], out: Path) -> list[str]:
        self.drawn += 1
        (out / f"{self.name}.png").write_text(f"{res['plot']['values']} drawn")
        return [f"{self.name}.png"]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeExperiment]:
    import sys

    import nc.experiments.runner as runner
    mods = {n: FakeExperiment(n) for n in ("fake_a", "fake_b")}
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, f"nc.experiments.{n}", m)
    monkeypatch.setattr(runner, "EXPERIMENTS", ("fake_a", "fake_b"))
    return mods


def test_append_keeps_other_experiments_and_records_each_run(tmp_path: Path, fakes: dict[str, FakeExperiment]) -> None:
    first = reproduce(["fake_a", "fake_b"], config(2, True), tmp_path, progress=False)
    assert first["meta"]["pieces"] == 1 and first["meta"]["seeds"] == [1000, 1001]
    (tmp_path / "fake_a.png").unlink()
    # fake_b again on 3 seeds: fake_a is kept as it was, and its figure drawn again
    again = reproduce(["fake_b"], config(3, True), tmp_path, progress=False, append=True)
    ex, meta = again["experiments"], again["meta"]
    assert list(ex) == ["fake_a", "fake_b"]
    assert ex["fake_a"]["entries"][0]["values"] == first["experiments"]["fake_a"]["entries"][0]["values"]
    assert ex["fake_a"]["seeds"] == [1000, 1001] and ex["fake_b"]["seeds"] == [1000, 1001, 1002]
    assert fakes["fake_a"].drawn == 2 and (tmp_path / "fake_a.png").is_file()
    assert math.isnan(ex["fake_a"]["entries"][1]["values"][0]) and ex["fake_a"]["entries"][1]["values"][1] == math.inf
    assert meta["runs"]["fake_a"]["seeds"] == [1000, 1001] and meta["runs"]["fake_b"]["seeds"] == [1000, 1001, 1002]
    assert meta["runs"]["fake_a"]["started"] == first["meta"]["started"]
    assert meta["seeds"] == [1000, 1001, 1002] and meta["pieces"] == 2 and meta["quick"] is True
    assert set(meta["experiment_s"]) == {"fake_a", "fake_b"}
    assert meta["wall_s"] == pytest.approx(sum(meta["experiment_s"].values()))
    assert json.loads((tmp_path / "results.json").read_text())["meta"]["runs"]["fake_b"]["seeds"] == [1000, 1001, 1002]
    report = (tmp_path / "report.md").read_text()
    assert "the sum over the 2 runs" in report and "## fake_a" in report and "## fake_b" in report
    # without --append the report is written from scratch
    fresh = reproduce(["fake_b"], config(2, True), tmp_path, progress=False)
    assert list(fresh["experiments"]) == ["fake_b"] and "runs" in fresh["meta"]


def test_append_reads_results_without_runs_and_refuses_mixing(tmp_path: Path, fakes: dict[str, FakeExperiment]) -> None:
    reproduce(["fake_a"], config(2, True), tmp_path, progress=False)
    path = tmp_path / "results.json"
    old = json.loads(path.read_text())
    old["meta"].pop("runs")  # a results.json written before per-experiment runs were recorded
    old["meta"]["nc_commit"] = "0ld"
    path.write_text(json.dumps(old))
    res = reproduce(["fake_b"], config(2, True), tmp_path, progress=False, append=True)
    assert res["meta"]["runs"]["fake_a"]["nc_commit"] == "0ld"
    assert res["meta"]["nc_commit"].startswith("0ld (fake_a); ")  # commits listed per experiment where they differ
    with pytest.raises(CallError, match="holds a quick run and this one is full"):
        reproduce(["fake_b"], config(2, False), tmp_path, progress=False, append=True)
    path.write_text("{not json")
    with pytest.raises(CallError, match="is not the results.json"):
        reproduce(["fake_b"], config(2, True), tmp_path, progress=False, append=True)
    # --append into an empty folder is a fresh run
    assert list(reproduce(["fake_a"], config(1, True), tmp_path / "new", progress=False, append=True)["experiments"]) \
        == ["fake_a"]


def test_append_on_the_command_line(tmp_path: Path, fakes: dict[str, FakeExperiment]) -> None:
    out = str(tmp_path)
    assert main(["reproduce", "fake_a", "--quick", "--out", out, "--no-progress"]) == 0
    assert main(["reproduce", "fake_b", "--quick", "--seeds", "1", "--out", out, "--no-progress", "--append"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["experiments"]) == ["fake_a", "fake_b"]
    assert results["meta"]["runs"]["fake_b"]["seeds"] == [1000]
    assert main(["reproduce", "fake_b", "--out", out, "--no-progress", "--append"]) == 1  # full onto quick
