"""The XLA programs a run builds, counted from JAX's monitoring events, for summary.json.

    split = compiles.Split()   # listens from here on
    split.mark()               # before the first training call, and again after it
    split.summary()            # {"before_first_call": {...}, "first_call": {...}, "after_first_call": {...}}

Each part: `programs` (XLA compilations asked for: compiled, or loaded from the persistent
cache), `cache_hits` (loaded), `compiled` (the difference), `seconds` (both kinds), `names`
(each program's name and how many of it). A program compiled op by op shows up by its
operation's name (`dot`, `add`, `broadcast_in_dim`): a run should have none.
"""

from __future__ import annotations

import threading
from collections import Counter

import jax

from jaxgan.compile_cache import HIT_EVENT

# Wraps compiling a program or loading it from the persistent cache (jax._src.dispatch, jax 0.10).
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
PARTS = ("before_first_call", "first_call", "after_first_call")

_lock = threading.Lock()
_programs: Counter = Counter()
_totals = {"hits": 0, "seconds": 0.0}
_listening = False


def _on_duration(event: str, seconds: float, fun_name: str = "?", **_) -> None:
    if event == COMPILE_EVENT:
        with _lock:
            _programs[fun_name] += 1
            _totals["seconds"] += seconds


def _on_event(event: str, **_) -> None:
    if event == HIT_EVENT:
        with _lock:
            _totals["hits"] += 1


def listen() -> None:
    """Starts counting (once a process: JAX keeps its listeners for good)."""
    global _listening
    with _lock:
        if _listening:
            return
        _listening = True
    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    jax.monitoring.register_event_listener(_on_event)


def _now() -> tuple[Counter, int, float]:
    with _lock:
        return Counter(_programs), _totals["hits"], _totals["seconds"]


class Split:
    """The programs built before the first training call, during it and after it (to `summary`)."""

    def __init__(self):
        listen()
        self._marks = [_now()]

    def mark(self) -> None:
        """The first call's start, then its end; later marks are ignored."""
        if len(self._marks) < 3:
            self._marks.append(_now())

    def summary(self) -> dict:
        marks = self._marks + [_now()] * (4 - len(self._marks))  # no call: everything counts as before it
        parts = {}
        for name, (start, end) in zip(PARTS, zip(marks, marks[1:]), strict=True):
            names = end[0] - start[0]
            programs, hits = sum(names.values()), end[1] - start[1]
            parts[name] = {
                "programs": programs,
                "cache_hits": hits,
                "compiled": programs - hits,
                "seconds": round(end[2] - start[2], 3),
                "names": dict(sorted(names.items())),
            }
        return parts
