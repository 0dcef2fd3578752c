"""Orbax checkpoints of a `TrainState`, with the run's config and a digest beside each.

A checkpoint is `WORKDIR/checkpoints/<epoch>/` holding two items: `state` (the
state's arrays) and `meta` (the config, the epoch and a sha256 of the arrays).
Orbax writes each into a temporary folder and renames it when complete, so a
crash never leaves a half-written checkpoint under a final name; the digest
catches one altered afterwards. `gancore.resume.restore_latest` takes the newest
checkpoint that reads back intact.

Saving is asynchronous: `save` returns once the arrays are on the host and digested, and
Orbax writes them in a background thread while training goes on; `wait` (and `epochs`,
which never lists a checkpoint still being written) blocks until that write is done.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxgan.step import TrainState

# Orbax logs through absl (every save at INFO; a failed write as ERROR tracebacks, many times over), and
# tensorstore's reads left pending by a failure end in "Event loop is closed" errors after Orbax's asyncio
# loop is gone. The user reads one sentence about a failure (gancore.runs): these go to a file, never the terminal.
_THIRD_PARTY = ("absl", "asyncio")
LOG_NAME = "orbax.log"


def route_logs(path: Path | None) -> None:
    """Sends Orbax's and asyncio's logging (warnings and worse) to `path` (appended), or nowhere (None)."""
    handler = logging.NullHandler() if path is None else logging.FileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in _THIRD_PARTY:
        logger = logging.getLogger(name)
        for old in logger.handlers[:]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def _unraisable(hook):
    def unraisable(unraisable) -> None:
        if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
            logging.getLogger("asyncio").warning("after a failed read or write: %r", unraisable.exc_value)
        else:
            hook(unraisable)

    return unraisable


route_logs(None)
sys.unraisablehook = _unraisable(sys.unraisablehook)


def _arrays(state: TrainState) -> dict:
    return {
        "step": state.step,
        "g_params": state.g_params,
        "d_params": state.d_params,
        "g_opt_state": state.g_opt_state,
        "d_opt_state": state.d_opt_state,
        "key_data": jax.random.key_data(state.key),
        # Only when there is one: the article's checkpoints keep their layout and digest.
        **({} if state.ema_params is None else {"ema_params": state.ema_params}),
        # Only a D with stats (spectral norm) saves them: the other runs' checkpoints read as before.
        **({} if state.d_stats is None else {"d_stats": state.d_stats}),
    }


def digest(tree) -> str:
    """sha256 over every leaf's dtype, shape and bytes, in tree order."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        a = np.asarray(leaf)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class Checkpointer:
    """Saves every call in the background and keeps the newest `keep` checkpoints; a reader's is synchronous."""

    def __init__(self, workdir: Path | str, keep: int = 3, *, read_only: bool = False):
        self.directory = (Path(workdir) / "checkpoints").absolute()
        route_logs(None if read_only else self.directory.parent / LOG_NAME)  # a reader writes nothing in the workdir
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=not read_only, create=not read_only, read_only=read_only)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def epochs(self) -> list[int]:
        """The epochs of the complete checkpoints (Orbax lists a save from its start: wait for it)."""
        self.wait()
        return sorted(self._manager.all_steps())

    def save(self, epoch: int, state: TrainState, config: dict) -> None:
        """Returns after the device-to-host copy and the digest; the write goes on until `wait`."""
        arrays = jax.device_get(_arrays(state))
        meta = {"epoch": epoch, "step": int(arrays["step"]), "config": config, "sha256": digest(arrays)}
        self._manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)), force=True)

    def wait(self) -> None:
        """Blocks until the last save is complete on disk; raises its error (once) when it failed."""
        self._manager.wait_until_finished()

    def restore(self, epoch: int, like: TrainState) -> tuple[TrainState, dict]:
        """Checkpoint `epoch` as a state shaped like `like`, and its meta; raises when it is not intact."""
        target = _arrays(like)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self._manager.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        arrays = jax.tree.unflatten(jax.tree.structure(target), jax.tree.leaves(restored.state))
        if digest(arrays) != restored.meta["sha256"]:
            raise ValueError("its arrays do not match the digest saved with them")
        state = like.replace(
            step=arrays["step"],
            g_params=arrays["g_params"],
            d_params=arrays["d_params"],
            g_opt_state=arrays["g_opt_state"],
            d_opt_state=arrays["d_opt_state"],
            key=jax.random.wrap_key_data(arrays["key_data"], impl=jax.random.key_impl(like.key)),
            ema_params=arrays.get("ema_params"),
            d_stats=arrays.get("d_stats"),
        )
        return state, restored.meta

    def set_aside(self, epoch: int) -> Path:
        """Moves a corrupt checkpoint out of the way (kept for inspection, never deleted)."""
        from jaxgan import parallel

        aside = self.directory.parent / "checkpoints.corrupt" / f"{epoch}-{time.strftime('%Y%m%d-%H%M%S')}"
        if parallel.is_main_process():  # every process found it corrupt; one moves it
            aside.parent.mkdir(exist_ok=True)
            (self.directory / str(epoch)).rename(aside)
        parallel.wait_for_all(f"set-aside-{epoch}")
        self._manager.reload()
        return aside

    def close(self) -> None:
        self._manager.close()
