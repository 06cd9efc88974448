"""The layout's promises: imports point one way (no cycles; nothing in runner/ imports style_transfer.py), and the
model and the network know no kind of stage (films and tiles plug in through loss pieces and views)."""

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


def names_in_code(path):
    """Every name the code of the file at `path` defines or uses (not its docstrings and comments)."""
    found = set()
    for node in ast.walk(ast.parse(open(os.path.join(PROJECT, path)).read())):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
    return found


def test_the_model_and_the_network_know_no_kind_of_stage():
    """Films and tiles reach the model as data (loss pieces, a view): the algorithm's file and the network's
    import neither, and their code names none of them; the network knows no Problem."""
    for path in ("style_transfer.py", "load_vgg.py"):
        assert not project_imports(path) & {"runner.tiles", "runner.video", "runner.flow"}, path
        kinds = {name for name in names_in_code(path) if any(word in name.lower() for word in
                                                            ("tile", "film", "frame", "temporal", "context"))}
        assert kinds == set(), (path, kinds)
    assert project_imports("load_vgg.py") <= {"utils", "runner.tf_setup"}
    assert "problem" not in {name.lower() for name in names_in_code("load_vgg.py")}
