"""The orchestrator package's layout: public import paths kept, role subpackages, no import
circle inside the package (docs/ARCHITECTURE.md, "Package map")."""

import ast
import configparser
import importlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "orchestrator"
# The package root holds only its public face; everything else lives in a role subpackage.
ROOT_MODULES = {"__init__.py", "errors.py", "testbed.py", "pytest_plugin.py"}


def _entry_points():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    raw = cfg["options.entry_points"]
    return {group: dict(line.split(" = ", 1) for line in raw[group].strip().splitlines()
                        if line.strip() and not line.lstrip().startswith("#"))
            for group in ("console_scripts", "pytest11")}


def test_entry_points_resolve():
    eps = _entry_points()
    assert eps["console_scripts"] == {"calinet": "orchestrator.cli.main:main"}
    assert eps["pytest11"] == {"calinet": "orchestrator.pytest_plugin"}
    module, func = eps["console_scripts"]["calinet"].split(":")
    assert callable(getattr(importlib.import_module(module), func))
    assert hasattr(importlib.import_module("orchestrator.pytest_plugin"), "testbed")


def test_testbed_import_is_lazy_and_public():
    # `import orchestrator` (and the pure API) must not pull in Mininet or the testbed.
    code = ("import sys, orchestrator, orchestrator.api; "
            "print('orchestrator.testbed' in sys.modules, 'mininet' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    from orchestrator import Testbed
    from orchestrator.testbed import Testbed as Direct
    assert Testbed is Direct


def test_package_root_holds_only_the_public_face():
    assert {p.name for p in PKG.glob("*.py")} == ROOT_MODULES
    for sub in (p for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__"):
        init = sub / "__init__.py"
        assert init.exists(), f"{sub} is not a package"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init} says nothing of its role"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """orchestrator modules a file imports at module level (function-local imports are the
    deliberate way to break a cycle and are not counted)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out.update(n for n in names if n in modules)
    return out


def test_no_import_circle_in_the_package():
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {m: _imports(p, set(files)) - {m} for m, p in files.items()}
    # A package's __init__ importing nothing keeps "a.b imports a" harmless; drop the edge
    # from a module to its own parents (Python imports them first anyway).
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
