"""The package's import graph, read with `ast` (nothing is imported): no module imports back into a circle,
and the stage configs load without the training stack, so a config is checked before any model loads."""

from __future__ import annotations

import ast
from pathlib import Path

import atommem

PACKAGE = Path(atommem.__file__).parent
HEAVY = ("torch", "transformers", "accelerate", "trl", "peft", "vllm", "deepspeed")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, top_level_only: bool = False) -> set[str]:
    """Every module `name` imports: anywhere in it (functions and TYPE_CHECKING blocks too, which a type
    checker follows), or with top_level_only what runs when it is imported."""
    tree = ast.parse(MODULES[name].read_text())
    nodes = list(ast.walk(tree))
    if top_level_only:  # module-level statements, into if/try blocks, except `if TYPE_CHECKING:`
        nodes = [n for stmt in tree.body if not _defines_or_type_checks(stmt) for n in ast.walk(stmt)]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from atommem.train import rl_loop` imports a module, not a name
            found |= {f"{node.module}.{alias.name}" for alias in node.names
                      if f"{node.module}.{alias.name}" in MODULES}
    return found


def _defines_or_type_checks(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.If):
        return isinstance(stmt.test, ast.Name) and stmt.test.id == "TYPE_CHECKING"
    return isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)


def internal_graph() -> dict[str, set[str]]:
    return {name: {m for m in imports(name) if m in MODULES and m != name} for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = internal_graph()
    # package __init__ files only re-export their own modules; a circle through them is not one
    graph = {name: {m for m in deps if not MODULES[m].name == "__init__.py"} for name, deps in graph.items()}
    assert cycles(graph) == []


def test_training_code_never_imports_recipes():
    for name in MODULES:
        if not name.startswith("atommem.recipes") and name != "atommem.cli":
            assert not any(m.startswith("atommem.recipes") for m in imports(name)), name


def test_stage_configs_load_without_the_training_stack():
    configs = [name for name in MODULES if name.endswith("_config")]
    assert {"atommem.train.rl_config", "atommem.train.sft_config"} <= set(configs)
    for config_module in configs:
        seen, todo = set(), [config_module]
        while todo:  # everything importing the config module runs, transitively
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            direct = imports(name, top_level_only=True)
            heavy = sorted(m for m in direct if m.split(".")[0] in HEAVY)
            assert not heavy, f"{config_module} imports {heavy} through {name}"
            todo += [m for m in direct if m in MODULES]


def test_every_logger_is_named_after_its_module():
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "getLogger":
                assert [ast.unparse(a) for a in node.args] == ["__name__"], f"{name}: {ast.unparse(node)}"


def test_comments_cite_only_this_repository():
    """Citations point at the paper and at docs/ here (method fixes: docs/method-fixes.md), never at files
    a reader of this repository does not have."""
    root = PACKAGE.parent
    outside = ("method.md", "../shared", "method fix")
    for path in [*PACKAGE.rglob("*.py"), *(root / "tests").glob("*.py"), *(root / "docs").glob("*.md"),
                 *(root / "workflow").rglob("*.smk"), *(root / "config").glob("*.yaml")]:
        text = path.read_text()
        if path.name != Path(__file__).name:
            assert not [word for word in outside if word in text], path


# Packages from the bottom up: a module imports only from its own layer or those below it. Within the first
# layer (shared utilities) any order; agent below tasks (a generated task's oracle plays episodes), tasks
# below eval (scoring and the write audit call a task's hooks), eval below methods and train, recipes on top.
LAYERS = [
    {"errors", "io", "config", "fingerprint", "workflow_lock", "workflow_checks", "workflow_services", "tracking",
     "tables", "plots"},
    {"data"},
    {"llm"},
    {"memory"},
    {"agent"},
    {"tasks"},
    {"eval"},
    {"methods"},
    {"train"},
    {"recipes"},
    {"cli"},
]


def layer_of(module: str) -> int:
    part = module.split(".")[1]
    return next(i for i, names in enumerate(LAYERS) if part in names)


def test_every_module_is_in_a_layer():
    for name in MODULES:
        if name != "atommem":
            layer_of(name)


def test_no_package_imports_one_above_it():
    upward = sorted(f"{name} -> {dep}" for name, deps in internal_graph().items() if name != "atommem"
                    for dep in deps if dep != "atommem" and layer_of(dep) > layer_of(name))
    assert upward == []
