"""The shipped grammars: generated from the table, and tested both ways.

Every program nc parses (conformance, Feynman, examples, notebooks, test_semantics) parses under
the Lark grammar; programs generated from the Lark grammar by seeded random expansion are read
and parsed by nc.
"""

from __future__ import annotations

import ast
import json
import random
import re
from pathlib import Path

import pytest

import nc
from nc.errors import NCError, ReadError
from nc.grammar import FILES, FORMATS, GENERATORS, arity_classes, grammar_text
from nc.parse import parse

lark = pytest.importorskip("lark")
from lark.grammar import NonTerminal  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path("/work/shared")


@pytest.fixture(scope="module")
def parser():
    from nc.grammar import lark_parser

    return lark_parser()


def corpus() -> list[tuple[str, str]]:
    """(where, program) for every program text the project holds that nc parses."""
    found: list[tuple[str, str]] = []
    for name in ("cases.jsonl", "recursion.jsonl"):
        path = SHARED / "conformance" / name
        if path.exists():
            for line in path.read_text().splitlines():
                case = json.loads(line)
                found.append((f"{name}:{case['id']}", case["program"]))
    feynman = SHARED / "data" / "feynman15.json"
    if feynman.exists():
        found += [(f"feynman:{d['id']}", d["program"]) for d in json.loads(feynman.read_text())]
    for path in [ROOT / "tests" / "test_semantics.py", *sorted((ROOT / "notebooks").glob("*.py")),
                 *sorted((ROOT / "examples").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "(" in node.value:
                found.append((f"{path.name}:{node.lineno}", node.value))
    out = []
    for where, text in found:
        try:
            parse(text, externals=externals_of(text))
        except NCError:
            continue  # not a program (or a deliberately wrong one): the grammar owes it nothing
        except RecursionError:
            continue
        out.append((where, text))
    return out


def externals_of(text: str) -> tuple[str, ...]:
    # Learned components are called like functions; the examples name a few.
    return tuple(n for n in ("drag", "net", "correction", "mlp", "f_nn", "learned") if f"({n} " in text)


CORPUS = corpus()


def test_the_corpus_is_large():
    assert len(CORPUS) >= 100, len(CORPUS)


@pytest.mark.slow
def test_every_program_nc_parses_parses_under_the_lark_grammar(parser):
    failed = []
    for where, text in CORPUS:
        try:
            parser.parse(text)
        except lark.exceptions.LarkError as e:
            failed.append((where, str(e).splitlines()[0]))
    assert not failed, failed[:5]


@pytest.mark.parametrize("text", ["(+ 1 2.3.4)", "(sqrt x", "(f 'x)", "(if 1 2)", "(let x 1)",
                                  "(define x 1)", "(cond ((< x 0) 1))", "(+1 2)", "(sqrt x))",
                                  "(lambda (x) (+ (lambda (y) y) x))", "(recur 1)", "[]"])
def test_the_grammar_rejects_what_nc_rejects(parser, text):
    with pytest.raises(NCError):
        parse(text)
    with pytest.raises(lark.exceptions.LarkError):
        parser.parse(text)


def test_the_shipped_files_are_what_the_table_generates():
    for fmt, filename in FORMATS.items():
        assert (FILES / filename).read_text() == GENERATORS[fmt](), f"run python -m nc.grammar --write ({fmt})"
        assert grammar_text(fmt) == GENERATORS[fmt]()


def test_every_primitive_name_is_in_both_grammars():
    lark_text, gbnf_text = grammar_text("lark"), grammar_text("gbnf")
    for names in arity_classes().values():
        for n in names:
            assert re.escape(n).replace("/", "\\/") in lark_text, n
            assert f'"{n}"' in gbnf_text, n


def test_gbnf_rules_are_all_defined():
    text = grammar_text("gbnf")
    defined = set(re.findall(r"^([a-z0-9]+) ::=", text, re.M))
    body = re.sub(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]', " ", text)
    body = "\n".join(line.split("::=", 1)[1] for line in body.splitlines() if "::=" in line)
    used = set(re.findall(r"\b([a-z][a-z0-9]*)\b", body))
    assert "root" in defined
    assert used <= defined, used - defined


def test_unknown_format_is_a_call_error():
    with pytest.raises(nc.CallError):
        grammar_text("yacc")


# ---- generation: random expansion of the Lark grammar -----------------------------------------

KEYWORD_TEXT = {"KW_" + k.upper().replace("*", "_STAR"): k for k in
                ("define", "lambda", "let", "let*", "letrec", "letrec*", "if", "cond", "else", "loop", "recur",
                 "euler", "rk4")}
NAME_STEMS = ("x", "v", "g/L", "theta_dot", "v->x", "k!", "dx2", "sin")


class Generator:
    """Random programs from the grammar's rules; ``loose_*`` rules (generic calls) are not used."""

    def __init__(self, parser, seed: int, max_depth: int = 6) -> None:
        self.rng = random.Random(seed)
        self.rules: dict[str, list[list]] = {}
        for r in parser.rules:
            if not r.origin.name.startswith("loose"):
                self.rules.setdefault(r.origin.name, []).append(list(r.expansion))
        for name in self.rules:  # drop expansions that need a loose rule
            self.rules[name] = [e for e in self.rules[name]
                                if not any(isinstance(s, NonTerminal) and s.name.startswith("loose") for s in e)]
        self.height = self.heights()
        self.max_depth = max_depth
        self.names = 0
        self.prims = {f"PRIM{k[0]}_{'N' if k[1] is None else k[1]}": v for k, v in arity_classes().items()}

    def heights(self) -> dict[str, float]:
        h = {n: float("inf") for n in self.rules}
        changed = True
        while changed:
            changed = False
            for n, exps in self.rules.items():
                for e in exps:
                    v = 1 + max((h[s.name] for s in e if isinstance(s, NonTerminal)), default=0)
                    if v < h[n]:
                        h[n], changed = v, True
        return h

    def expand(self, symbol: str, depth: int, out: list[str]) -> None:
        options = self.rules[symbol]
        if depth >= self.max_depth:
            best = min(self.cost(e) for e in options)
            options = [e for e in options if self.cost(e) == best]
        for s in self.rng.choice(options):
            if isinstance(s, NonTerminal):
                self.expand(s.name, depth + 1, out)
            else:
                out.append(self.terminal(s.name))

    def cost(self, expansion: list) -> float:
        return max((self.height[s.name] for s in expansion if isinstance(s, NonTerminal)), default=0)

    def terminal(self, name: str) -> str:
        fixed = {"LPAR": "(", "RPAR": ")", "LSQB": "[", "RSQB": "]", "BOOLEAN": "#t"}
        if name in fixed:
            return fixed[name]
        if name in KEYWORD_TEXT:
            return KEYWORD_TEXT[name]
        if name in self.prims:
            return self.rng.choice(self.prims[name])
        if name == "NUMBER":
            return self.rng.choice(["0", "1", "2", "-3", "0.5", ".25", "+4", "6.674e-11", "1E3"])
        assert name == "NAME", name
        self.names += 1  # fresh names: never bound twice, so only context-free rules matter
        return f"{self.rng.choice(NAME_STEMS)}{self.names}"

    def program(self) -> str:
        out: list[str] = []
        self.expand("start", 0, out)
        return " ".join(out)


N_GENERATED = 300


@pytest.mark.slow
def test_generated_programs_are_read_and_parsed_by_nc(parser):
    gen = Generator(parser, seed=12)
    read_ok = parsed_ok = 0
    forms: set[str] = set()
    for _ in range(N_GENERATED):
        text = gen.program()
        try:
            tree = parse(text)
        except ReadError as e:
            pytest.fail(f"nc cannot read a generated program: {text}\n{e}")
        except NCError as e:
            pytest.fail(f"nc rejects a generated program: {text}\n{e}")
        read_ok += 1
        parsed_ok += tree is not None
        forms.update(w for w in ("if", "cond", "let", "let*", "loop", "recur", "rk4", "euler", "lambda", "define")
                     if f"( {w} " in text)
        parser.parse(text)  # and the grammar reads back what it generated
    assert read_ok == parsed_ok == N_GENERATED
    assert forms >= {"if", "cond", "let", "let*", "loop", "recur", "lambda", "define"}, forms


def test_nc_grammar_prints_the_shipped_files(capsys):
    from nc.cli import main

    for fmt in ("lark", "gbnf"):
        assert main(["grammar", "--format", fmt]) == 0
        assert capsys.readouterr().out == grammar_text(fmt)
    assert main(["grammar"]) == 0 and capsys.readouterr().out == grammar_text("lark")


@pytest.mark.slow
def test_importing_nc_imports_neither_lark_nor_sympy():
    import subprocess
    import sys

    code = "import sys, nc; print('lark' in sys.modules, 'sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.stdout.split() == ["False", "False"]
