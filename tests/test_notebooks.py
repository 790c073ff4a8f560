"""Every notebook in notebooks/ (jupytext percent format) runs top to bottom; each checks itself."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # about 13 s for all notebooks

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert any(p.name == "getting_started.py" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, capsys):
    text = path.read_text()
    assert "# %%" in text, "notebooks are jupytext percent-format scripts"
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out  # a notebook shows its results
