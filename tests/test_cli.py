"""The ``nc`` command line: primitives, show, check (exit codes 0 clean, 1 errors, 2 usage)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import nc
from nc.cli import main
from nc.primitives import table_rows

CLEAN = "(define k 2)\n(* k (sin x))\n"
BAD = "(define k 2)\n(* k (sine x))\n"


@pytest.fixture
def files(tmp_path):
    clean = tmp_path / "clean.nc"
    clean.write_text(CLEAN)
    bad = tmp_path / "bad.nc"
    bad.write_text(BAD)
    return clean, bad


def test_primitives_lists_every_row(capsys):
    assert main(["primitives"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["name", "arity"]
    rows = table_rows()
    assert len(lines) == len(rows) + 1
    names = {line.split()[0] for line in lines[1:]}
    for required in ["+", "sqrt", "atan", "norm", "cross", "det", "eye", "softplus", "laplacian1d"]:
        assert required in names
    assert any(line.startswith("pow / expt") for line in lines)
    sqrt_line = next(line for line in lines if line.split()[0] == "sqrt")
    assert "torch.sqrt" in sqrt_line


def test_show_prints_the_listing(files, capsys):
    clean, _ = files
    assert main(["show", str(clean)]) == 0
    out = capsys.readouterr().out
    assert out == nc.make_program(CLEAN).listing() + "\n"
    assert out.startswith("program (x=v0:f[])")
    assert "sin v0" in out and "* 2.0" in out


def test_show_code_prints_the_generated_python(files, capsys):
    clean, _ = files
    assert main(["show", "--code", str(clean)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("def nc_program(")
    assert "torch.sin(" in out
    tree = __import__("ast").parse(out)  # it is valid Python: one function definition
    assert [type(node).__name__ for node in tree.body] == ["FunctionDef"]


def test_check_with_a_shape(tmp_path, capsys):
    path = tmp_path / "v.nc"
    path.write_text("(cross u w)")
    assert main(["check", str(path)]) == 0
    capsys.readouterr()
    assert main(["check", "--json", "--shape", "u=2", str(path)]) == 1
    (problem,) = json.loads(capsys.readouterr().out)
    assert problem["class"] == "ShapeError" and "cross" in problem["message"]


@pytest.mark.parametrize("text, args, shown", [
    ("(* s (norm u))", ["--shape", "u=3"], "u=v1:f[3]"),
    ("(+ u [1 2 3])", ["--shape", "u=3"], "u=v0:f[3]"),
    # undeclared: the listing is the program that serves every size, the size left open
    ("(dot u [1 2 3])", [], "u=v0:f[?]"),
])
def test_show_of_a_sized_program(tmp_path, capsys, text, args, shown):
    path = tmp_path / "v.nc"
    path.write_text(text)
    assert main(["show", *args, str(path)]) == 0
    assert shown in capsys.readouterr().out


def test_show_of_a_bad_program_exits_1_with_the_error(files, capsys):
    _, bad = files
    assert main(["show", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{bad}:2:7: error: unknown function 'sine'")
    assert "^~~~" in captured.err


def test_check_clean_exits_0(files, capsys):
    clean, _ = files
    assert main(["check", str(clean)]) == 0
    assert capsys.readouterr().out.strip() == f"{clean}: 0 errors"


def test_check_errors_exit_1(files, capsys):
    _, bad = files
    assert main(["check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{bad}:2:7: error: unknown function 'sine'")
    assert "hint: did you mean `sin`" in out
    assert out.rstrip().endswith(f"{bad}: 1 error")


def test_check_json(files, capsys):
    clean, bad = files
    assert main(["check", "--json", str(bad)]) == 1
    (problem,) = json.loads(capsys.readouterr().out)
    assert problem == {
        "code": "NC300",
        "class": "UnboundNameError",
        "message": "unknown function 'sine'",
        "hint": problem["hint"],
        "file": str(bad),
        "line": 2,
        "column": 7,
        "end_line": 2,
        "end_column": 10,
    }
    assert "`sin`" in problem["hint"]
    assert main(["check", "--json", str(clean)]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize("text, code", [
    ("(+ 1 2", "NC100"),
    ("(if (> x 0) x)", None),
    ("(norm u)\n(+ 1 2)", "NC200"),
    ("(cross [1 2] [3 4])", "NC500"),
])
def test_check_reports_each_kind_of_error(tmp_path, capsys, text, code):
    path = tmp_path / "p.nc"
    path.write_text(text)
    assert main(["check", "--json", str(path)]) == 1
    (problem,) = json.loads(capsys.readouterr().out)
    if code is not None:
        assert problem["code"] == code
    assert problem["line"] >= 1 and problem["column"] >= 1


@pytest.mark.parametrize("argv", [[], ["check"], ["show"], ["bogus"], ["check", "--nope", "x.nc"]])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "usage: nc" in captured.out + captured.err


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.nc")]) == 2
    assert "missing.nc" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "show"])
def test_a_program_file_that_is_not_utf8_exits_2_with_its_position(tmp_path, capsys, command):
    bad = tmp_path / "latin1.nc"
    bad.write_bytes(b"; caf\xe9\n(+ x 1)\n")
    assert main([command, str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1:6: not UTF-8 text (byte 0xe9)" in err and "Traceback" not in err


def test_a_utf8_byte_order_mark_is_dropped(tmp_path, capsys):
    program = tmp_path / "bom.nc"
    program.write_bytes(b"\xef\xbb\xbf" + CLEAN.encode())
    assert main(["check", str(program)]) == 0


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "show" in capsys.readouterr().out


@pytest.mark.slow
def test_console_script(files):
    _, bad = files
    exe = shutil.which("nc")
    cmd = [exe] if exe else [sys.executable, "-m", "nc.cli"]
    result = subprocess.run([*cmd, "check", "--json", str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    (problem,) = json.loads(result.stdout)
    assert (problem["line"], problem["column"], problem["code"]) == (2, 7, "NC300")
