"""The layout holds as the code grows: no import cycle inside ``hub/``, and the CLI speaks only to the public API.

Read with ``ast`` (nothing is imported), so a cycle hidden in a function-level import is caught too. Imports under
``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HUB = ROOT / "hub"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(HUB.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every ``hub`` module that ``name`` imports at run time (module level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        # The longest known module that ``target`` names (``hub.catalogue.Catalogue`` -> ``hub.catalogue``).
        while target:
            if target in known:
                return target
            target = target.rpartition(".")[0]
        return None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if (hit := resolve(alias.name)) is not None:
                        found.add(hit)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - (child.level - 1)]
                    base = ".".join(base_parts)
                    module = f"{base}.{child.module}" if child.module else base
                else:
                    module = child.module or ""
                for alias in child.names:
                    hit = resolve(f"{module}.{alias.name}") or resolve(module)
                    if hit is not None:
                        found.add(hit)
            visit(child)

    visit(tree)
    # A module importing its own package's __init__ (``from . import x`` resolves to hub.pkg.x first) is not a cycle of ours;
    # importing oneself (``from hub.x import y`` inside hub.x) never happens.
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0

    def strong(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return result


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop edges from a module to a package that contains it.

    ``hub/__init__.py`` re-exports from its submodules, and a submodule that says ``from hub import errors`` really
    means ``hub.errors``; such an edge to an enclosing package is the re-export surface, not a design cycle.
    """
    return {
        name: {dep for dep in deps if not name.startswith(dep + ".")}
        for name, deps in graph.items()
    }


def test_the_graph_sees_real_imports() -> None:
    graph = import_graph()
    # A known edge in each direction that the layout relies on: the CLI uses the API, the API uses the catalogue.
    assert "hub.api" in graph["hub"]
    assert any(dep.startswith("hub.catalogue") for dep in graph["hub.api"])


def test_cycle_detector_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_inside_hub() -> None:
    cycles = _cycles(_without_package_inits(import_graph()))
    assert cycles == [], "import cycles inside hub/: " + "; ".join(" <-> ".join(c) for c in cycles)


# What the CLI may import besides its own package: the public API (``hub``'s __init__ and the modules it names as public)
# and the ground everyone stands on.
CLI_ALLOWED = {"hub", "hub.api", "hub.errors", "hub.config"}


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m.startswith("hub.cli")))
def test_cli_imports_only_the_public_api(module: str) -> None:
    graph = import_graph()
    outside = sorted(dep for dep in graph[module] if not dep.startswith("hub.cli") and dep not in CLI_ALLOWED)
    assert outside == [], f"{module} imports {outside}; the CLI talks only to {sorted(CLI_ALLOWED)}"


# The top of ``hub/`` holds only the ground, the public API and the re-exports kept for plugins written against old
# paths; everything else lives in a room (a package), so the tree reads as the architecture.
TOP_LEVEL = {
    "__init__.py", "api.py", "errors.py", "config.py", "limits.py",  # the public API and the ground
    "samplers.py", "pipelines.py",  # one-line re-exports of hub.running.* (docs/plugins.md used these paths)
}


def test_only_the_ground_and_the_api_sit_at_the_top_of_hub() -> None:
    loose = sorted(p.name for p in HUB.glob("*.py") if p.name not in TOP_LEVEL)
    assert loose == [], f"modules outside a room: {loose}; put them in the package of their room (ARCHITECTURE.md)"


def test_compatibility_modules_only_re_export() -> None:
    for name in ("samplers.py", "pipelines.py"):
        tree = ast.parse((HUB / name).read_text(encoding="utf-8"))
        body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        assert len(body) == 1 and isinstance(body[0], ast.ImportFrom), f"hub/{name} must stay a one-line re-export"


def test_every_package_is_installed() -> None:
    """A package missing from pyproject's list works in an editable install and vanishes from a wheel."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {_module_name(p.parent) for p in HUB.rglob("__init__.py")}
    on_disk |= {"hub_plugins"} if (ROOT / "plugins" / "__init__.py").exists() else set()
    assert sorted(on_disk - listed) == [], "packages missing from [tool.setuptools] packages in pyproject.toml"
    assert sorted(listed - on_disk) == [], "pyproject.toml lists packages that do not exist"


PURE_ROOMS = ("hub.identify", "hub.files", "hub.sources.refs", "hub.resources.read", "hub.resources.infotext",
              "hub.resources.comfyui")


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m.startswith(PURE_ROOMS)))
def test_pure_rooms_take_their_tables_as_arguments(module: str) -> None:
    """Identification and the file readers never reach into the plugin manager, the catalogue or the built-in plugins."""
    graph = import_graph()
    reached = sorted(dep for dep in graph[module] if dep.startswith(("hub.plugins", "hub.catalogue", "hub.api")))
    assert reached == [], f"{module} imports {reached}; pass what it needs as an argument instead"
    source = _modules()[module].read_text(encoding="utf-8")
    assert "hub_plugins" not in "".join(
        line for line in source.splitlines(keepends=True) if line.lstrip().startswith(("import ", "from "))
    ), f"{module} imports a built-in plugin by name"
