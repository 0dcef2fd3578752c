import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gancore.config import UserError
from jaxgan import compile_cache

# A fresh process: turn the cache on (folder from the environment), compile a small
# function (well under JAX's default one-second threshold), report the cache hits of
# that compilation and of the whole process (jnp.ones compiles a program of its own).
PROGRAM = """
import json, jax, jax.numpy as jnp
from jaxgan import compile_cache
folder = compile_cache.enable()
x = jnp.ones((16, 8))
before = compile_cache.cache_hits()
jax.jit(lambda x: jnp.tanh(x @ x.T) * 3.0).lower(x).compile()
print(json.dumps({"folder": folder and str(folder), "hits": compile_cache.cache_hits() - before,
                  "all_hits": compile_cache.cache_hits()}))
"""


def compile_in_a_fresh_process(env: dict) -> dict:
    env = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_program_from_the_cache(tmp_path):
    folder = tmp_path / "xla"
    env = {compile_cache.ENV_DIR: str(folder), compile_cache.ENV_OFF: ""}
    first = compile_in_a_fresh_process(env)
    assert first == {"folder": str(folder), "hits": 0, "all_hits": 0}
    written = sorted(p.name for p in folder.iterdir())
    assert len(written) >= 2  # the function and jnp.ones' program, each under its cache key
    second = compile_in_a_fresh_process(env)
    assert second == {"folder": str(folder), "hits": 1, "all_hits": len(written)}
    assert sorted(p.name for p in folder.iterdir()) == written  # loaded, nothing new written


def test_the_variable_switches_the_cache_off(tmp_path):
    folder = tmp_path / "xla"
    off = compile_in_a_fresh_process({compile_cache.ENV_DIR: str(folder), compile_cache.ENV_OFF: "1"})
    assert off == {"folder": None, "hits": 0, "all_hits": 0}
    assert not folder.exists()


def test_cache_dir_defaults_to_a_per_user_folder(tmp_path):
    assert compile_cache.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "jaxgan" / "xla"
    assert compile_cache.cache_dir({}) == Path.home() / ".cache" / "jaxgan" / "xla"
    assert compile_cache.cache_dir({compile_cache.ENV_DIR: str(tmp_path / "c"), "XDG_CACHE_HOME": "/x"}) == tmp_path / "c"
    assert compile_cache.cache_dir({compile_cache.ENV_DIR: str(tmp_path), compile_cache.ENV_OFF: "0"}) == tmp_path
    assert compile_cache.cache_dir({compile_cache.ENV_DIR: str(tmp_path), compile_cache.ENV_OFF: "yes"}) is None


def test_an_unwritable_folder_is_refused_in_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot create the compilation cache folder .* set JAXGAN_CACHE_DIR"):
        compile_cache.enable(blocker / "xla")


def test_disable_stops_writing_to_the_folder(tmp_path):
    import jax
    import jax.numpy as jnp

    compile_cache.enable(tmp_path / "xla")
    try:
        jax.jit(lambda x: x * 7.0 - 1.0).lower(jnp.float32(1)).compile()
        written = len(list((tmp_path / "xla").iterdir()))
        assert written >= 1
    finally:
        compile_cache.disable()
    jax.jit(lambda x: x * 5.0 + 2.0).lower(jnp.float32(1)).compile()
    assert len(list((tmp_path / "xla").iterdir())) == written


def test_a_second_enable_moves_the_cache_to_its_folder(tmp_path):
    # JAX opens its cache once; an in-process run (train_jax's enable()) before bench.py's
    # enable(fresh folder) kept writing to the first folder, and the warm compile found nothing.
    import jax
    import jax.numpy as jnp

    first, second = tmp_path / "first", tmp_path / "second"
    try:
        compile_cache.enable(first)
        jax.jit(lambda x: x * 3.0 - 4.0).lower(jnp.float32(1)).compile()
        in_first = len(list(first.iterdir()))
        assert in_first >= 1
        compile_cache.enable(second)
        jax.jit(lambda x: x * 9.0 + 6.0).lower(jnp.float32(1)).compile()
        assert len(list(second.iterdir())) >= 1
        assert len(list(first.iterdir())) == in_first
    finally:
        compile_cache.disable()
