import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# PyTorch on one intra-op thread in the workers and the scripts they start (set before torch loads):
# two xdist workers share a 2-core machine, and torch's threads spun against the other worker's
# (3 epochs of train_torch, loaded machine: 4.3 CPU-s and 15-20 s on two threads, 0.7 and 4 s on one).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def load_script(name: str):
    """Imports scripts/NAME.py as a module, so its main() runs in-process."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does: dataclasses and pickle look the module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def compile_cache_dir() -> Path | None:
    """The persistent compilation cache that train_jax.py's subprocesses use, opened in this process too.

    Most of the suite's time is XLA compiling; many tests build the same program anew (a new GAN,
    a new closure: a miss in jit's in-process cache, the same HLO). With the cache on, each such
    program compiles once a run, also across this process and the scripts' subprocesses, and a
    rerun loads them all. JAXGAN_NO_CACHE=1 runs the suite without it.
    """
    from jaxgan import compile_cache

    return compile_cache.enable()


@pytest.fixture(autouse=True)
def _compile_cache(compile_cache_dir):
    """Reopens the suite's cache after a test that moved or closed it (bench.py, test_compile_cache)."""
    yield
    import jax

    from jaxgan import compile_cache

    if compile_cache_dir is not None and jax.config.jax_compilation_cache_dir != str(compile_cache_dir):
        compile_cache.enable(compile_cache_dir)
