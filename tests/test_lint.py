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


def test_the_type_checker_is_clean():
    """mypy over platypush_ext ([tool.mypy] in pyproject.toml), function bodies included."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_type_checker_does_fail_on_a_type_error(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 1 and "Incompatible return value type" in result.stdout


#: The longest function of platypush_ext/, in lines of code: its signature and body, its
#: docstring aside (the RST ``:param:`` lines that Platypush shows in its UI are documentation).
#: The one module that names ``typing.Any``: as ``JSON``, the type of a value decoded from JSON.
JSON_ALIAS_MODULE = "core/untrusted.py"


def _any_uses(source: str) -> list[int]:
    """The lines of ``source`` that name ``typing.Any`` (as ``Any`` or ``typing.Any``, also in an
    annotation written as a string)."""

    def names_any(tree: ast.AST) -> bool:
        return any(
            (isinstance(n, ast.Name) and n.id == "Any") or (isinstance(n, ast.Attribute) and n.attr == "Any")
            for n in ast.walk(tree)
        )

    def annotation(text: str) -> ast.AST | None:
        try:
            return ast.parse(text, mode="eval")
        except SyntaxError:
            return None  # prose

    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Name, ast.Attribute)) and names_any(node):
            lines.add(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "Any" in node.value:
            if (parsed := annotation(node.value)) is not None and names_any(parsed):
                lines.add(node.lineno)
    return sorted(lines)


def test_any_is_named_only_by_the_json_alias():
    """``Any`` only where a value really is arbitrary JSON: such values are typed ``JSON`` or
    ``JSONObject`` (core/untrusted.py), everything else precisely."""
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := _any_uses(path.read_text()))
    }
    alias = found.pop(JSON_ALIAS_MODULE)
    assert len(alias) == 1, f"{JSON_ALIAS_MODULE} names Any on lines {alias}: only in `JSON = Any`"
    assert not found, found


def test_the_any_check_finds_each_spelling():
    source = "import typing\nfrom typing import Any\nx: Any\ny: typing.Any\nz: 'dict[str, Any]'\nw = 'Any time'\n"
    assert _any_uses(source) == [3, 4, 5]


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


# -- the layout (docs/architecture in the README's Design section) ------------------------------------

PACKAGE = ROOT / "platypush_ext"
#: The longest module of platypush_ext/, in lines.
MAX_MODULE_LINES = 700


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports (relative imports resolved; ``from x import y`` gives ``x`` and ``x.y``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _modules() -> dict[str, set[str]]:
    return {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_the_core_is_framework_free():
    """``platypush_ext.core`` imports nothing from Platypush, nor from the bundle outside the core."""
    offending = [
        f"{module} imports {imported}"
        for module, imports in _modules().items()
        if module.startswith("platypush_ext.core")
        for imported in sorted(imports)
        if imported.split(".")[0] == "platypush"
        or (imported.startswith("platypush_ext.") and not imported.startswith("platypush_ext.core"))
    ]
    assert not offending, "\n".join(offending)


def test_runtime_code_never_imports_test_or_demo_tooling():
    tooling = ("tests", "benchmarks", "platypush_ext.sandbox", "platypush_ext.demo")
    offending = [
        f"{module} imports {imported}"
        for module, imports in _modules().items()
        if not module.startswith(("platypush_ext.sandbox", "platypush_ext.demo"))
        for imported in sorted(imports)
        if imported.startswith(tooling)
    ]
    assert not offending, "\n".join(offending)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles among ``graph``'s modules (each as the path that closes it)."""
    cycles, state = [], dict.fromkeys(graph, 0)  # 0 unseen, 1 on the path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module] & graph.keys()):
            if state[imported] == 1:
                cycles.append(path[path.index(imported) :] + [imported])
            elif state[imported] == 0:
                visit(imported, path + [imported])
        state[module] = 2

    for module in graph:
        if state[module] == 0:
            visit(module, [module])
    return cycles


def test_no_import_circle():
    """No module imports, even lazily, one that imports it back (packages aside: a package's
    ``__init__`` re-exporting its modules is no circle)."""
    graph = {
        module: {i for i in imports if i != module and not module.startswith(i + ".")}
        for module, imports in _modules().items()
    }
    graph = {m: {i for i in imports if not i.startswith(m + ".")} for m, imports in graph.items()}
    assert not _cycles(graph), "\n".join(" -> ".join(c) for c in _cycles(graph))


def test_the_circle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_is_longer_than_700_lines():
    too_long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := path.read_text(encoding="utf-8").count("\n")) > MAX_MODULE_LINES
    ]
    assert not too_long, "\n".join(too_long)


def _docstrings_that_are_not_utf8(source: str) -> list[int]:
    """The lines of the docstrings in ``source`` that hold a lone surrogate (``"\\ud800"`` unescaped)."""
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, nodes) and (text := ast.get_docstring(node, clean=False)) is not None:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                found.append(node.body[0].lineno)
    return found


def test_every_docstring_is_valid_utf8():
    """Python 3.13 encodes docstrings when it compiles them: a lone surrogate in one (the sandbox's
    ``"\\ud800"`` written with one backslash) made ``import platypush_ext.sandbox`` fail there."""
    bad = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in _docstrings_that_are_not_utf8(path.read_text(encoding="utf-8"))
    ]
    assert not bad, bad


def test_the_docstring_check_finds_a_lone_surrogate():
    assert _docstrings_that_are_not_utf8('"""A JSON text: ``"\\ud800"``."""\n') == [1]
    assert _docstrings_that_are_not_utf8('"""A JSON text: ``"\\\\ud800"``."""\n') == []
