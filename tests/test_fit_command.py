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
    assert abs(float(line.split("=")[1].split("±")[0]) - 6.674) < 1e-9
    assert "fit report: 200 rows, target F" in out and "R^2 1.0000" in out
    fitted = out.split("fitted program:\n", 1)[1]
    assert fitted.startswith("(define G 6.67") and "(/ (* G (* m1 m2)) (pow r 2))" in fitted


@pytest.mark.slow
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


GOOD_ROWS = "1,2,3,1.48\n2,3,1,40\n"


@pytest.mark.parametrize("text, message", [
    (b"", "empty.csv: the file is empty"),
    (b"m1,m2,r,F\n", "no data rows after the header"),
    (b"m1,m2,r,F\n1,2,3\n", "bad.csv:2: row 1 has 3 cells, the header has 4"),
    (b"m1,m2,r,F\n1,2,3,4\n5,6,7,8,9\n", "bad.csv:3: row 2 has 5 cells"),
    (b"m1;m2;r;F\n1;2;3;4\n", "separated by commas, not ';'"),
    (b"m1\tm2\tr\tF\n1\t2\t3\t4\n", "separated by commas, not '\\t'"),
    (b"m1,m2,r,F\n1,2,\xff,4\n", "bad.csv:2:5: not UTF-8 text (byte 0xff)"),
    (b"m1,m1,r,F\n1,2,3,4\n", "column name 'm1' appears twice"),
    (b"m1,,r,F\n1,2,3,4\n", "column 2 of the header has no name"),
] + [
    (b"m1,m2,r,F\n1,2,3,4\n1,2," + cell.encode() + b",4\n", f"bad.csv:3: row 2, column 'r': {shown}")
    for cell, shown in [("abc", "'abc' is not a finite number"), ("", "is blank"), ("  ", "is blank"),
                        ("nan", "'nan' is not"), ("1e999", "'1e999' is not"), ("0x10", "'0x10' is not"),
                        ("n/a", "'n/a' is not"), ("inf", "'inf' is not"), ("-Infinity", "'-Infinity' is not"),
                        ("1_000", "'1_000' is not"), ("\u0663", "'\u0663' is not")]
])
def test_malformed_csv_is_a_usage_error_naming_row_and_column(gravity, tmp_path, capsys, text, message) -> None:
    program, _ = gravity
    data = tmp_path / ("empty.csv" if not text else "bad.csv")
    data.write_bytes(text)
    assert main(["fit", str(program), str(data), "--trainable", "G"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert captured.out == ""  # nothing was fitted or printed


def test_column_names_are_kept_as_written(gravity, tmp_path, capsys) -> None:
    # a byte-order mark, a Python keyword as a name, spaces around names and cells, a blank line
    program, _ = gravity
    program.write_text("(define G 1.0)\n(/ (* G (* print m2)) (pow r 2))\n")
    data = tmp_path / "named.csv"
    data.write_bytes(b"\xef\xbb\xbfprint , m2,r,F\n 1, 2,3,1.4831111111111111\n2,3,1 ,40.044\n\n")
    assert main(["fit", str(program), str(data), "--trainable", "G"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("G = "))
    assert abs(float(line.split("=")[1].split("±")[0]) - 6.674) < 1e-9
    assert "fit report: 2 rows, target F" in out


@pytest.mark.parametrize("args", [["--lr", "nan"], ["--lr", "-1"], ["--lr", "inf"], ["--lr", "abc"],
                                  ["--epochs", "2.5"], ["--epochs", "-1"], ["--restarts", "x"]])
def test_bad_numeric_options_exit_2(gravity, capsys, args) -> None:
    program, data = gravity
    assert main(["fit", str(program), str(data), "--trainable", "G", *args]) == 2
    assert f"argument {args[0]}" in capsys.readouterr().err


@pytest.mark.parametrize("param", ["G=nan", "G=inf", "=2", "G=1e999"])
def test_non_finite_param_start_is_an_error(gravity, capsys, param) -> None:
    program, data = gravity
    program.write_text("(/ (* G (* m1 m2)) (pow r 2))\n")
    assert main(["fit", str(program), str(data), "--param", param]) == 1
    assert "finite number" in capsys.readouterr().err


def test_fit_prints_each_constant_with_its_standard_error(gravity, capsys) -> None:
    program, data = gravity
    rows = np.loadtxt(data, delimiter=",", skiprows=1)
    rows[:, 3] *= 1 + 0.02 * np.random.default_rng(1).standard_normal(len(rows))  # 2 % noise
    np.savetxt(data, rows, delimiter=",", header="m1,m2,r,F", comments="")
    assert main(["fit", str(program), str(data), "--trainable", "G"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("G = "))
    value, stderr = (float(v) for v in line.split("=")[1].split("±"))
    assert 0 < stderr < 0.05 and abs(value - 6.674) < 4 * stderr  # about 0.1 % at 2 % noise, 200 rows
    assert "standard error" in out
