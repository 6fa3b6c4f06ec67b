"""The import graph of symback's own modules, read from the source with ``ast``.

The rule: **module-level imports** (those that run when a module is first imported) form no cycle, so the
modules line up as stages, each importing only earlier ones. **Function-level imports** (run when the
function is called: the CLI's stage imports, a renderer loaded for one output) are listed separately and
may point anywhere but at the CLI: no stage module imports ``symback.cli``, at either level. Importing
``symback.a.b`` also runs the package ``symback.a`` first; those implicit parent edges are not counted (the
parent is always initialised first, and ``symback/__init__.py`` imports nothing of its own).
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import symback

ROOT = Path(symback.__file__).parent
CLI = "symback.cli"


@dataclass
class ImportGraph:
    """Module name -> the symback modules it imports at module level (``eager``) and inside functions (``lazy``)."""

    eager: dict[str, set[str]] = field(default_factory=dict)
    lazy: dict[str, set[str]] = field(default_factory=dict)

    def order(self) -> list[list[str]]:
        """The modules in stages: each stage's modules import (at module level) only earlier stages' modules."""
        sorter = graphlib.TopologicalSorter(self.eager)
        sorter.prepare()  # raises graphlib.CycleError, naming the cycle
        stages = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            stages.append(ready)
            sorter.done(*ready)
        return stages


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The symback modules an import statement loads (``from .x import y`` is ``x.y`` when that is a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    return {name for name in names if name.split(".")[0] == "symback" and name != module}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_graph() -> ImportGraph:
    paths = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph = ImportGraph()
    for module, path in paths.items():
        graph.eager[module], graph.lazy[module] = set(), set()

        def visit(node: ast.AST, in_function: bool, module: str = module, path: Path = path) -> None:
            for child in ast.iter_child_nodes(node):
                if _is_type_checking(child):  # never runs: neither kind of import
                    continue
                if isinstance(child, ast.Import | ast.ImportFrom):
                    found = _targets(child, module, path.name == "__init__.py", set(paths))
                    (graph.lazy if in_function else graph.eager)[module].update(found)
                visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

        visit(ast.parse(path.read_text(encoding="utf-8")), False)
    from symback.cli import COMMAND_MODULES  # imported by name (importlib) when the parser is built

    graph.lazy[CLI].update(COMMAND_MODULES)
    for module in graph.lazy:
        graph.lazy[module] -= graph.eager[module]
    return graph


def _is_cli(module: str) -> bool:
    return module == CLI or module.startswith(CLI + ".") or module == "symback.__main__"


def test_module_level_imports_have_no_cycle_and_the_stage_order_is_printed():
    graph = import_graph()
    try:
        stages = graph.order()
    except graphlib.CycleError as error:
        pytest.fail(f"module-level import cycle: {' -> '.join(error.args[1])}")
    print("\nstage order (each line imports, at module level, only modules on the lines above it):")
    for number, stage in enumerate(stages):
        shown = [name.removeprefix("symback.") or "symback" for name in stage if not _is_cli(name)]
        if shown:
            print(f"  {number:>2}  {', '.join(shown)}")
    command_line = sorted(module for module in graph.eager if _is_cli(module))
    print(f"  command line (imports the stages when a command runs): {', '.join(command_line)}")
    flat = [module for stage in stages for module in stage]
    assert set(flat) == set(graph.eager)
    position = {module: number for number, stage in enumerate(stages) for module in stage}
    for module, imported in graph.eager.items():  # what order() promises, checked edge by edge
        assert all(position[target] < position[module] for target in imported), module


def test_the_graph_sees_the_imports_that_exist():
    """The walk finds both kinds: a test that reads an empty graph would pass for nothing."""
    graph = import_graph()
    assert "symback.compile.compiler" in graph.eager["symback.render.derivation"]
    assert "symback.render.latex" in graph.lazy["symback.render.derivation"]  # the Jupyter display, imported when shown
    assert "symback.training.train" in graph.lazy["symback.cli.train"]
    assert "symback.cli.verify" in graph.lazy[CLI]


def test_no_stage_module_imports_the_cli():
    graph = import_graph()
    offenders = {
        module: sorted(target for target in graph.eager[module] | graph.lazy[module] if _is_cli(target))
        for module in graph.eager
        if not _is_cli(module)
    }
    assert {module: found for module, found in offenders.items() if found} == {}


def test_the_package_root_imports_nothing_of_its_own():
    graph = import_graph()
    assert graph.eager["symback"] == set()


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=ROOT.parent)
    return set(done.stdout.split())


def test_import_symback_loads_neither_the_compiler_nor_the_renderer_nor_the_cli():
    loaded = _modules_after("import symback")
    heavy = {"symback.compile.compiler", "symback.render.report", "symback.render.latex", "symback.render.derivation", "jinja2", "symback.cli"}
    assert loaded & heavy == set()
    assert "symback" in loaded  # the subprocess imported this checkout, not nothing


def test_a_public_name_loads_only_what_it_needs():
    loaded = _modules_after("import symback\nsymback.Network([1, 1], 'sigmoid', 'squared_error')")
    assert "symback.symbolic.network" in loaded
    assert loaded & {"symback.compile.compiler", "symback.render.report", "jinja2"} == set()


def test_version_loads_neither_the_compiler_nor_sympy():
    code = "from symback.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    loaded = _modules_after(code)
    assert loaded & {"symback.compile.compiler", "sympy", "numpy", "jinja2"} == set()
    assert "symback.cli.train" in loaded  # the parser was built, every command's arguments with it


def test_every_public_name_is_importable_and_is_its_module_s_object():
    import importlib

    assert sorted(symback.__all__) == sorted(symback._PUBLIC)
    for name, module in symback._PUBLIC.items():
        assert getattr(symback, name) is getattr(importlib.import_module(f"symback.{module}"), name)
    assert set(symback.__all__) <= set(dir(symback))
    with pytest.raises(AttributeError, match="no attribute 'Netwerk'"):
        symback.Netwerk  # noqa: B018


def test_star_import_gives_every_public_name():
    script = "from symback import *\nimport symback\nprint([n for n in symback.__all__ if n not in globals()])"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT.parent)
    assert done.stdout.strip() == "[]"


def test_a_cycle_is_found_and_named():
    graph = ImportGraph(eager={"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()})
    with pytest.raises(graphlib.CycleError):
        graph.order()
    assert ImportGraph(eager={"a": {"b"}, "b": set()}).order() == [["b"], ["a"]]


def test_the_names_type_checkers_see_are_the_names_loaded_at_run_time():
    """symback/__init__.py's ``if TYPE_CHECKING:`` imports (for editors) and ``_PUBLIC`` (for __getattr__) agree."""
    tree = ast.parse((ROOT / "__init__.py").read_text(encoding="utf-8"))
    block = next(node for node in tree.body if _is_type_checking(node))
    seen = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen == symback._PUBLIC


#: The stage packages in the order data flows through them; the foundation modules at the top of the package
#: (errors, registry, budget, files, resources, data, datasets) sit below every stage.
STAGES = ["grammar", "symbolic", "spec", "compile", "training", "render", "verification", "classroom", "cli"]


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_the_stage_packages_import_only_earlier_stages_counting_function_level_imports():
    """One subpackage per stage, data flowing one way: a stage imports (at any level) only stages before it."""
    graph = import_graph()
    stages_found = {_stage(module) for module in graph.eager} - {None}
    assert stages_found <= set(STAGES) and {"grammar", "symbolic", "compile", "render", "cli"} <= stages_found
    backwards = sorted(
        f"{module} -> {target}"
        for module in graph.eager
        for target in graph.eager[module] | graph.lazy[module]
        if _stage(module) and _stage(target) and STAGES.index(_stage(target)) > STAGES.index(_stage(module))
    )
    assert backwards == []


def test_every_module_lives_in_a_stage_package_or_the_foundation():
    foundation = {"__init__", "__main__", "errors", "registry", "budget", "files", "resources", "data", "demo"}
    top_level = {path.stem for path in ROOT.glob("*.py")}
    assert top_level <= foundation, sorted(top_level - foundation)
