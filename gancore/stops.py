"""How a process of jaxgan stops on a signal (the standard library only: installed before any heavy import).

SIGINT (Ctrl-C) and SIGTERM (how SLURM, Kubernetes and preemptible cloud machines stop a
process, SIGKILL following after a grace period) are handled alike: while a run trains,
`gancore.runs.StopFlag` turns the first one into a checkpoint and a clean stop; at any other
moment (imports, start-up, the final outputs, a second signal) the process ends at once
with one line and the signal's exit code. Ending at once is safe there: every file of a run
is written atomically, so this is a SIGKILL that says what to do.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it
WHAT = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}

_workdir: Path | None = None  # the run's workdir, once the flags are read: what the line advises depends on it


def install(workdir: Path | str | None = None) -> None:
    """From now on SIGINT and SIGTERM end this process at once with one line (call it first in a script).

    A signal ignored at start stays ignored (a shell starts `script &` with SIGINT ignored, so that
    Ctrl-C at the terminal spares it)."""
    watch(workdir)
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, exit_now)


def watch(workdir: Path | str | None) -> None:
    """The workdir whose state the stop line describes (None: a script that writes no run)."""
    global _workdir
    _workdir = None if workdir is None else Path(workdir)


def run_exists() -> bool:
    """Whether the watched workdir holds a run that --resume continues (its config.json is written first)."""
    return _workdir is not None and (_workdir / "config.json").is_file()


def advice() -> str:
    """How to go on after a stop: --resume where the workdir holds a run, else the same command again."""
    if run_exists():
        return "what the last checkpoint saved is kept (continue with --resume)"
    return "no run was started yet (run the same command again)" if _workdir is not None else "nothing was written"


def line(signum: int) -> str:
    """The one line a stop by `signum` before or after training prints."""
    return f"stopped: {WHAT.get(signum, f'signal {signum}')}; {advice()}."


def exit_now(signum: int, frame) -> None:
    """Raising here would land anywhere (inside numpy's import, in a gc callback that swallows it): exit instead."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.write(2, ("\n" + line(signum) + "\n").encode())
    os._exit(EXIT_CODES.get(signum, 128 + signum))


def end(code: int) -> None:
    """Ends a script with `code`. A failure's exit does not wait for the threads a library left behind:
    after a failed write Orbax's background threads wait minutes for signals that never come."""
    if code == 0:
        sys.exit(0)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
