"""The layers hold: jaxgan imports no torch, torch_baseline no JAX, and what needs both lives in sidebyside.

Read from the source with `ast`, so an import inside a function counts as much as one at the top.
"""

import ast
from pathlib import Path

from conftest import ROOT

JAX = {"jax", "jaxlib", "flax", "optax", "orbax", "chex"}
TORCH = {"torch", "torchvision", "torch_baseline"}


def imports(source: str) -> set[str]:
    """Every absolute module name the source imports, anywhere in it (`from a.b import c` gives a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def top_level(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def package_imports(package: str) -> dict[str, set[str]]:
    """module name -> the modules it imports, for every file of a package."""
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    return {".".join(f.relative_to(ROOT).with_suffix("").parts): imports(f.read_text()) for f in files}


def reached(start: set[str], graph: dict[str, set[str]]) -> set[str]:
    """`start` and every module of `graph` that it imports, directly or through others."""
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph.get(name, ())
    return seen


def test_jaxgan_imports_neither_torch_nor_torch_baseline_nor_sidebyside():
    for module, names in package_imports("jaxgan").items():
        assert not top_level(names) & (TORCH | {"sidebyside"}), f"{module} imports {sorted(top_level(names) & (TORCH | {'sidebyside'}))}"


def test_torch_baseline_reaches_no_jax_not_even_through_jaxgan():
    graph = {**package_imports("jaxgan"), **package_imports("torch_baseline")}
    for module in package_imports("torch_baseline"):
        through = reached(graph[module], graph)
        assert not top_level(through) & JAX, f"{module} reaches {sorted(n for n in through if n.split('.')[0] in JAX)}"
        assert "sidebyside" not in top_level(through), f"{module} imports sidebyside"


def test_the_import_walk_sees_every_kind_of_import(tmp_path: Path):
    source = "import numpy as np\n\ndef f():\n    from torch_baseline.model import Generator\n    import jax.numpy\n"
    assert imports(source) == {"numpy", "torch_baseline.model", "torch_baseline.model.Generator", "jax.numpy"}
    graph = {"a": {"b"}, "b": {"c", "jax"}, "c": set()}
    assert reached({"a"}, graph) == {"a", "b", "c", "jax"}
