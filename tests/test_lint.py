"""The code stays ruff-clean and ruff-formatted (rules in pyproject.toml), its functions short."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "platypush_ext", "platypush", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied():
    """``ruff format`` (line length and style from pyproject.toml) leaves every file as it is."""
    paths = ["platypush_ext", "platypush", "tests", "benchmarks"]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *paths], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    unformatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--stdin-filename", "x.py"],
        cwd=ROOT,
        input="x  =  {'a':1}\n",
        capture_output=True,
        text=True,
    )
    assert unformatted.returncode == 1  # the check does fail on an unformatted file


#: The longest function of platypush_ext/, in lines of code: its signature and body, its
#: docstring aside (the RST ``:param:`` lines that Platypush shows in its UI are documentation).
MAX_FUNCTION_LINES = 50


def _code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = function.end_lineno - function.lineno + 1  # type: ignore[operator]
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1  # type: ignore[operator]
    return lines


def test_no_function_is_longer_than_50_lines():
    too_long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {_code_lines(node)} lines"
        for path in sorted((ROOT / "platypush_ext").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > MAX_FUNCTION_LINES
    ]
    assert not too_long, "\n".join(too_long)


def test_the_length_check_counts_code_not_docstrings():
    source = "def f():\n    '''doc\n\n    more doc'''\n" + "    x = 1\n" * 3
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef) and _code_lines(function) == 4
    assert _code_lines(ast.parse("def g():\n" + "    y = 2\n" * 60).body[0]) == 61  # type: ignore[arg-type]
