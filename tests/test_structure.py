"""The shape of the code, checked: ruff finds nothing, no import cycle among the lab's modules, no function over
60 lines, and no module outside a family's own files branches on a family's name (a family is a record in
`engines.registry.FAMILIES`: code outside its own files asks the record, never `if name == "gan"`)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from engines.registry import FAMILIES

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("engines", "app")
MAX_FUNCTION_LINES = 60


def python_files(*roots: str) -> list[Path]:
    files = []
    for root in roots:
        path = REPO / root
        files += [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
    return files


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def test_ruff_finds_nothing():
    """The settings are in pyproject.toml; `ruff check --fix .` mends most findings, pre-commit runs it too."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------------ import cycles
def module_level_statements(body: list[ast.stmt]):
    """The statements that run when the module is imported: not function bodies, not `if TYPE_CHECKING:`."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from module_level_statements(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], (ast.stmt, ast.ExceptHandler)):
                for child in inner:
                    yield from module_level_statements(child.body if isinstance(child, ast.ExceptHandler) else [child])


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """First-party modules that `path` imports when it is imported (`from a.b import c` names a.b.c when c is a
    module, else a.b)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in module_level_statements(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:   # `import engines.models.vae` as written, else its package
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = python_files(*PACKAGES)
    modules = {module_name(f) for f in files}
    return {module_name(f): imported_modules(f, modules) for f in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"b"}}) == []


def test_the_import_graph_reads_relative_and_package_imports(tmp_path, monkeypatch):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("from pkg import sub\n")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "one.py").write_text(
        "from . import two\nfrom ..base import thing\nimport os\ndef f():\n    import pkg.late\n")
    (tmp_path / "pkg" / "sub" / "two.py").write_text("from pkg.sub.one import g\n")
    (tmp_path / "pkg" / "base.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                              "    from pkg.sub import one\n")
    (tmp_path / "pkg" / "late.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    files = python_files("pkg")
    modules = {module_name(f) for f in files}
    graph = {module_name(f): imported_modules(f, modules) for f in files}
    assert graph["pkg"] == {"pkg.sub"} and graph["pkg.base"] == set() and graph["pkg.late"] == set()
    assert graph["pkg.sub.one"] == {"pkg.sub.two", "pkg.base"} and graph["pkg.sub.two"] == {"pkg.sub.one"}
    assert cycles(graph) == [["pkg.sub.one", "pkg.sub.two"]]


def test_no_import_cycle_among_the_labs_modules():
    """A cycle makes import order matter and the layers meaningless: engines must not need app, nor a measure
    the module that imports it. (Imports inside functions are not counted: they run later.)"""
    assert cycles(import_graph()) == []


# ---------------------------------------------------------------------------------------------- function size
def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    return [f"{relative(path)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_is_longer_than_a_screen():
    """Over 60 lines (the `def` line to the last, docstring included) a function does several things: split it."""
    offenders = [line for path in python_files(*PACKAGES, "app.py", "scripts") for line in long_functions(path)]
    assert offenders == [], "\n".join(offenders)


# ---------------------------------------------------------------------------------- branching on family names
def family_names_in(node: ast.expr, names: set[str]) -> set[str]:
    """The family names a string constant, or a tuple / list / set of them, spells."""
    if isinstance(node, ast.Constant) and node.value in names:
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names}
    return set()


def branches_on_family_names(source: str, names: set[str], filename: str = "<source>") -> list[str]:
    """`name == "gan"`, `name in ("vae", "gan")`, `!=`, `not in`, `case "gan":` and dict literals keyed by family
    names only (lookup tables: {"vae": ..., "gan": ...}[name]), as "line: what"."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Compare):
            equality = [op for op in node.ops if isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))]
            spelled = set().union(*(family_names_in(side, names) for side in [node.left, *node.comparators]))
            if equality and spelled:
                found.append(f"{node.lineno}: compares with {', '.join(sorted(spelled))}")
        elif isinstance(node, ast.Dict) and len(node.keys) >= 2 and all(
                isinstance(k, ast.Constant) and k.value in names for k in node.keys):
            # every key a family name: a per-family table (a settings dict with a "diffusion" entry is not)
            found.append(f"{node.lineno}: a table keyed by {', '.join(sorted(k.value for k in node.keys))}")
        elif isinstance(node, ast.MatchValue) and family_names_in(node.value, names):
            found.append(f"{node.lineno}: case {node.value.value}")
    return found


def own_files(name: str) -> set[str]:
    return {f"engines/models/{name}.py", f"engines/training/{name}.py"}


def test_the_family_name_finder_sees_each_kind_of_branch():
    names = {"vae", "gan"}
    source = ('if name == "gan": pass\nif name in ("vae", "flow"): pass\nx = "gan" != name\n'
              'y = {"vae": 1, "gan": 2}[name]\nmatch name:\n    case "vae": pass\n'
              'z = name in OTHERS\nw = report["gan"]\nif name == "flow": pass\nlabel = "vae"\n'
              'settings = {"steps": 5, "gan": options}\n')
    assert branches_on_family_names(source, names) == [
        "1: compares with gan", "2: compares with vae", "3: compares with gan", "4: a table keyed by gan, vae",
        "6: case vae"]


def test_no_module_outside_a_familys_own_files_branches_on_its_name():
    """What differs between families is in their `Family` record and their engine; everything else loops over
    FAMILIES. Allowed: each family's engines/models/<name>.py and engines/training/<name>.py, the 2-D
    playground's own toy families (engines/toy/), and tests."""
    names = set(FAMILIES)
    allowed = set().union(*(own_files(name) for name in names))
    offenders = []
    for path in python_files(*PACKAGES, "app.py", "scripts"):
        where = relative(path)
        if where in allowed or where.startswith("engines/toy/"):
            continue
        found = branches_on_family_names(path.read_text(), names, where)
        offenders += [f"{where}:{line}" for line in sorted(found, key=lambda line: int(line.partition(":")[0]))]
    assert offenders == [], f"{len(offenders)} branches on family names:\n" + "\n".join(offenders)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_owns_a_model_module_ending_with_its_record(name):
    source = (REPO / "engines" / "models" / f"{name}.py").read_text()
    assert FAMILIES[name].engine.__module__ == f"engines.models.{name}"
    assert "FAMILY = Family(" in source, f"engines/models/{name}.py should end with FAMILY = Family(...)"
