"""`nc fit FILE DATA.csv`: constants fitted from the command line, with a report and a plot."""

from __future__ import annotations

import numpy as np
import pytest

from nc.cli import main


@pytest.fixture
def gravity(tmp_path):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    m1, m2, r = rng.uniform(0.5, 5, (3, 200))
    force = 6.674 * m1 * m2 / r**2
    data = tmp_path / "gravity.csv"
    np.savetxt(data, np.c_[m1, m2, r, force], delimiter=",", header="m1,m2,r,F", comments="")
    program = tmp_path / "gravity.nc"
    program.write_text("(define G 1.0)  ; unknown\n(/ (* G (* m1 m2)) (pow r 2))\n")
    return program, data


def test_fit_recovers_the_constant_and_prints_the_fitted_program(gravity, capsys) -> None:
    program, data = gravity
    assert main(["fit", str(program), str(data), "--trainable", "G"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("G = "))
    assert abs(float(line.split("=")[1]) - 6.674) < 1e-9
    assert "fit report: 200 rows, target F" in out and "R^2 1.0000" in out
    fitted = out.split("fitted program:\n", 1)[1]
    assert fitted.startswith("(define G 6.67") and "(/ (* G (* m1 m2)) (pow r 2))" in fitted


def test_fit_of_a_free_name_with_a_start_and_a_plot(gravity, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    program, data = gravity
    program.write_text("(/ (* G (* m1 m2)) (pow r 2))\n")
    plot = tmp_path / "fit.png"
    assert main(["fit", str(program), str(data), "--param", "G=2", "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot saved to" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    ([], "nothing to fit"),
    (["--trainable", "G", "--target", "nope"], "nope"),
    (["--param", "G=x"], "--param"),
])
def test_fit_usage_errors_are_nc_errors(gravity, capsys, args, message) -> None:
    program, data = gravity
    assert main(["fit", str(program), str(data), *args]) == 1
    assert message in capsys.readouterr().err


def test_fit_names_missing_columns(gravity, tmp_path, capsys) -> None:
    program, _ = gravity
    data = tmp_path / "short.csv"
    data.write_text("m1,m2,F\n1,2,3\n2,3,4\n")
    assert main(["fit", str(program), str(data), "--trainable", "G"]) == 1
    assert "no column for input r" in capsys.readouterr().err
