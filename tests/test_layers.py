"""The layers hold: gancore imports neither JAX nor torch, jaxgan no torch, torch_baseline only gancore and no
JAX, and what needs both lives in sidebyside.

Read from the source with `ast`, so an import inside a function counts as much as one at the top; and checked
by importing each package in a fresh interpreter, so an import that `ast` cannot see counts too.
"""

import ast
import os
import subprocess
import sys

from conftest import ROOT

JAX = {"jax", "jaxlib", "flax", "optax", "orbax", "chex"}
TORCH = {"torch", "torchvision", "torch_baseline"}
# What torch_baseline may import besides the standard library: the article's framework, NumPy and the shared core.
TORCH_BASELINE_MAY = {"torch", "numpy", "gancore", "torch_baseline"}


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


def loaded_after_importing(package: str) -> set[str]:
    """The top-level names in sys.modules of a fresh interpreter once every module of `package` is imported."""
    modules = sorted(package_imports(package))
    script = f"import sys\nfor m in {modules!r}:\n    __import__(m)\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert package in loaded and "numpy" in loaded, loaded  # the import ran, and what it loaded was read
    return loaded


def test_gancore_imports_no_framework_and_no_package_above_it():
    for module, names in package_imports("gancore").items():
        bad = top_level(names) & (JAX | TORCH | {"jaxgan", "sidebyside"})
        assert not bad, f"{module} imports {sorted(bad)}: gancore is what jaxgan and torch_baseline share"


def test_importing_all_of_gancore_loads_neither_jax_nor_torch():
    loaded = loaded_after_importing("gancore")
    assert not loaded & (JAX | TORCH | {"jaxgan"}), f"importing gancore loaded {sorted(loaded & (JAX | TORCH | {'jaxgan'}))}"


def test_jaxgan_imports_neither_torch_nor_torch_baseline_nor_sidebyside():
    for module, names in package_imports("jaxgan").items():
        assert not top_level(names) & (TORCH | {"sidebyside"}), f"{module} imports {sorted(top_level(names) & (TORCH | {'sidebyside'}))}"


def test_torch_baseline_imports_only_gancore_torch_numpy_and_the_standard_library():
    for module, names in package_imports("torch_baseline").items():
        bad = top_level(names) - TORCH_BASELINE_MAY - sys.stdlib_module_names
        assert not bad, f"{module} imports {sorted(bad)}: torch_baseline takes what it shares from gancore only"


def test_importing_all_of_torch_baseline_loads_no_jax():
    loaded = loaded_after_importing("torch_baseline")
    assert "torch" in loaded
    assert not loaded & (JAX | {"jaxgan", "sidebyside"}), f"importing torch_baseline loaded {sorted(loaded & (JAX | {'jaxgan', 'sidebyside'}))}"


def test_the_import_walk_sees_every_kind_of_import():
    source = "import numpy as np\n\ndef f():\n    from torch_baseline.model import Generator\n    import jax.numpy\n"
    assert imports(source) == {"numpy", "torch_baseline.model", "torch_baseline.model.Generator", "jax.numpy"}
    assert top_level(imports(source)) - TORCH_BASELINE_MAY - sys.stdlib_module_names == {"jax"}


def test_the_old_names_of_the_moved_modules_say_the_new_ones():
    """`python -m jaxgan.data --prepare` and `import jaxgan.config` (before gancore) refuse in one sentence naming gancore's module."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = lambda *args: subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    prepare = run("-m", "jaxgan.data", "--prepare")
    assert prepare.returncode == 1 and prepare.stdout == ""
    assert "jaxgan.data is now gancore.data" in prepare.stderr and prepare.stderr.count("\n") == 1
    script = (
        "import jaxgan\n"
        "for statement in ('import jaxgan.config', 'from jaxgan import runs', 'from jaxgan.loop import run', 'import jaxgan.nosuch'):\n"
        "    try:\n"
        "        exec(statement)\n"
        "    except ImportError as e:\n"
        "        print(type(e).__name__, e)\n"
        "from jaxgan import step\n"  # a module that is jaxgan's still imports
        "print(step.__name__)\n"
    )
    lines = run("-c", script).stdout.splitlines()
    moved = "(what jaxgan and torch_baseline share moved to the package gancore); use that name."
    assert lines == [
        f"ModuleNotFoundError jaxgan.config is now gancore.config {moved}",
        f"ModuleNotFoundError jaxgan.runs is now gancore.runs {moved}",
        f"ModuleNotFoundError jaxgan.loop is now gancore.loop {moved}",
        "ModuleNotFoundError No module named 'jaxgan.nosuch'",
        "jaxgan.step",
    ]
    gancore_modules = sorted(
        p.stem for p in (ROOT / "gancore").iterdir() if p.stem != "__init__" and (p.suffix == ".py" or p.is_dir()) and p.name != "__pycache__"
    )
    from jaxgan import _MOVED

    assert set(_MOVED) <= set(gancore_modules)  # each sentence names a module that is there
