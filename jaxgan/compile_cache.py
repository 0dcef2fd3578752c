"""JAX's persistent compilation cache in a per-user folder: a rerun loads XLA's programs instead of compiling them.

    from jaxgan import compile_cache
    compile_cache.enable()   # before the first jit compiles; returns the folder, or None when off

The folder: `$JAXGAN_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxgan/xla`, else `~/.cache/jaxgan/xla`.
`JAXGAN_NO_CACHE=1` switches it off; a cache folder the user gave JAX itself
(`JAX_COMPILATION_CACHE_DIR`) is kept.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from gancore.config import UserError

ENV_DIR = "JAXGAN_CACHE_DIR"
ENV_OFF = "JAXGAN_NO_CACHE"
HIT_EVENT = "/jax/compilation_cache/cache_hits"

_events: Counter = Counter()
_listening = False


def cache_dir(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The folder the cache goes to, or None when `JAXGAN_NO_CACHE` switches it off."""
    if environ.get(ENV_OFF, "") not in ("", "0"):
        return None
    if environ.get(ENV_DIR):
        return Path(environ[ENV_DIR]).expanduser()
    base = environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxgan" / "xla"


def _count(event: str, **_) -> None:
    _events[event] += 1


def enable(path: str | Path | None = None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Turns JAX's persistent compilation cache on at `path` (default: `cache_dir()`).

    Caches every program, however small or quick to compile (JAX's defaults skip
    those under a second). Call it before the first compilation: JAX opens its
    cache once; a call with another folder reopens it there. Returns the folder, or None when the cache is switched off.
    """
    import jax

    if path is None and jax.config.jax_compilation_cache_dir:
        path = jax.config.jax_compilation_cache_dir  # the user's own choice for JAX
    folder = Path(path) if path is not None else cache_dir(environ)
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create the compilation cache folder {folder} ({e.strerror}); set {ENV_DIR} to a writable folder, or {ENV_OFF}=1 to run without the cache."
        ) from None
    if jax.config.jax_compilation_cache_dir != str(folder):
        # JAX opens its cache once, at the first compilation: one opened elsewhere by an
        # earlier enable() would keep taking this process's programs.
        from jax.experimental.compilation_cache import compilation_cache

        compilation_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # -1: no size limit, no override
    global _listening
    if not _listening:
        jax.monitoring.register_event_listener(_count)
        _listening = True
    return folder


def disable() -> None:
    """Turns the cache off again in this process (JAX otherwise keeps writing to the folder it opened)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache.reset_cache()


def cache_hits() -> int:
    """Programs this process loaded from the cache since `enable()` instead of compiling them."""
    return _events[HIT_EVENT]
