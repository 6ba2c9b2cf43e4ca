"""The import graph of coursekit's grader (``coursekit.grade``) and labs (``coursekit.labs``) has no cycle.

The graph is read from the source with ``ast``, not from ``sys.modules``: every ``import`` and
``from ... import`` statement counts wherever it stands (module level, inside a function or a class,
under ``try``/``if``), except under ``if TYPE_CHECKING:``; so does ``importlib.import_module`` /
``__import__`` with a literal name. ``from pkg import name`` is an edge to ``pkg.name`` when that is a
module, else to ``pkg`` (its ``__init__``). Importing ``a.b.c`` also runs ``a/__init__`` and
``a/b/__init__`` first; those implicit edges to parent packages are left out (a package's
``__init__`` importing its own submodules is the usual layout, not a cycle). A module name built
at run time (the lab registry's ``import_module(f"coursekit.labs.questions.{lab_id}")``) cannot be
resolved statically and is listed by :func:`dynamic_imports`, which the last test pins.
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import coursekit

ROOT = Path(coursekit.__file__).resolve().parent
CHECKED = ("coursekit.grade", "coursekit.labs")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    files = {}
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST):
    """Every node of ``tree``, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _import_call(node: ast.AST):
    """The first argument of ``importlib.import_module(...)`` / ``import_module(...)`` / ``__import__(...)``."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    return node.args[0] if name in ("import_module", "__import__") else None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], list[str]]:
    """(modules of ``modules`` that ``name`` imports, the run-time-built import names it has)."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    edges, dynamic = set(), []

    def add(target: str):
        while target and target not in modules:       # `import coursekit.labs.spec.X`: the longest module
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)

    for node in _nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module
            for a in node.names:
                add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
        elif (arg := _import_call(node)) is not None:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                add(arg.value)
            else:
                dynamic.append(ast.unparse(arg))
    return edges, dynamic


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: imports_of(name, path, modules)[0] for name, path in modules.items()}


def dynamic_imports(modules: dict[str, Path]) -> dict[str, list[str]]:
    found = {name: imports_of(name, path, modules)[1] for name, path in modules.items()}
    return {k: v for k, v in found.items() if v}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


# ----------------------------------------------------------------------------- the checks

def test_grade_and_labs_have_no_import_cycle():
    modules = module_files()
    graph = import_graph(modules)
    assert {"coursekit.grade.engine", "coursekit.grade.feedback", "coursekit.labs.spec"} <= set(graph)
    assert "coursekit.grade.feedback" in graph["coursekit.grade.report"]       # the reader sees real edges
    bad = [c for c in cycles(graph) if any(m.startswith(CHECKED) for m in c)]
    assert bad == [], f"import cycles through coursekit.grade / coursekit.labs: {bad}"


def test_writers_never_reach_the_engine():
    """feedback, report and gradescope get what they need as arguments: no path of imports, at any level,
    leads from them to the engine (the engine calls them)."""
    graph = import_graph(module_files())
    for writer in ("feedback", "report", "gradescope"):
        reach = reachable(graph, f"coursekit.grade.{writer}")
        assert "coursekit.grade.engine" not in reach and "coursekit.grade" not in reach, (writer, sorted(reach))


def test_only_the_lab_registry_imports_by_a_run_time_name():
    found = dynamic_imports(module_files())
    checked = {k: v for k, v in found.items() if k.startswith(CHECKED)}
    assert checked == {"coursekit.labs.spec": ["f'coursekit.labs.questions.{lab_id}'"]}


def test_the_checker_finds_function_level_and_relative_cycles(tmp_path):
    """The check can fail: a cycle closed by an import inside a function, through a relative import and a
    package ``__init__``, is found; the same imports under ``if TYPE_CHECKING:`` are not edges."""
    pkg = tmp_path / "coursekit"
    (pkg / "grade").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "grade" / "__init__.py").write_text("from .engine import run\n")
    (pkg / "grade" / "engine.py").write_text("from . import feedback\n\ndef run():\n    return feedback\n")
    (pkg / "grade" / "feedback.py").write_text(textwrap.dedent("""\
        def write():
            from coursekit.grade import run        # the package: its __init__ imports engine
            return run
        """))
    (pkg / "grade" / "report.py").write_text(textwrap.dedent("""\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from .engine import run
        import importlib

        def load():
            return importlib.import_module("coursekit.grade.feedback")
        """))
    modules = module_files(pkg)
    graph = import_graph(modules)
    assert graph["coursekit.grade.report"] == {"coursekit.grade.feedback"}
    assert cycles(graph) == [["coursekit.grade", "coursekit.grade.engine", "coursekit.grade.feedback"]]
    (pkg / "grade" / "feedback.py").write_text("def write():\n    return None\n")
    assert cycles(import_graph(module_files(pkg))) == []
