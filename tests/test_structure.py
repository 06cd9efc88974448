"""The layout's promises: imports point one way (no cycles; nothing in runner/ imports style_transfer.py), and
no module outside tests/ grows past about 450 lines."""

import ast
import os

from conftest import PROJECT

MODULES = {"style_transfer": "style_transfer.py", "load_vgg": "load_vgg.py", "utils": "utils.py", "lbfgs": "lbfgs.py",
           **{f"runner.{name[:-3]}": os.path.join("runner", name)
              for name in os.listdir(os.path.join(PROJECT, "runner"))
              if name.endswith(".py") and name != "__init__.py"}}


def project_imports(path):
    """The project's modules that the file at `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(open(os.path.join(PROJECT, path)).read())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in MODULES}
    return found


def test_imports_point_one_way():
    graph = {module: project_imports(path) for module, path in MODULES.items()}
    assert graph["runner.inputs"] >= {"runner.problem", "runner.run_folder"}  # the parse sees real imports
    for module, imported in graph.items():
        if module.startswith("runner.") or module in ("load_vgg", "utils", "lbfgs"):
            assert "style_transfer" not in imported, module
    assert project_imports("lbfgs.py") == set() and "tensorflow" not in open(os.path.join(PROJECT, "lbfgs.py")).read()

    def reaches(start, goal, seen=()):
        return any(name == goal or (name not in seen and reaches(name, goal, (*seen, name))) for name in graph[start])
    cycles = [module for module in graph if reaches(module, module)]
    assert cycles == []


def test_no_module_outside_tests_is_longer_than_about_450_lines():
    paths = [*MODULES.values(), os.path.join("bench", "bench.py")]
    lengths = {path: len(open(os.path.join(PROJECT, path)).read().splitlines()) for path in paths}
    assert max(lengths.values()) <= 460, lengths
