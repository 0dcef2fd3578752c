"""One writer thread beside the training: sample grids, TensorBoard events, final pictures."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

QUEUE = 16  # writes pending at most: a writer slower than the training holds it back no further


class Writer:
    """Runs writes in one thread, in the order submitted, while the caller goes on training.

    `drain` waits for every write submitted so far and raises, in the caller's thread, the
    first error one of them raised (as it would have raised had it run there); `submit` raises
    that of one finished since the last call. Leaving the
    `with` block waits for the writes still queued.
    """

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxgan-writer")
        self._pending: list[Future] = []

    def submit(self, write: Callable, *args) -> None:
        """Queues `write(*args)`; waits only when QUEUE writes are pending. Raises the error of a write done since."""
        for future in [f for f in self._pending if f.done()]:
            self._pending.remove(future)
            future.result()
        if len(self._pending) >= QUEUE:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(write, *args))

    def drain(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True)
