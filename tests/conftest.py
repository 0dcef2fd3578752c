import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
