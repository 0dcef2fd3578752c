"""A run's workdir and its life cycle, shared by both trainers (pure Python, no JAX).

What may happen to a workdir: a new run creates it (refusing one that holds a
run, unless --overwrite); --resume continues the run in it (refusing a run made
with other settings, naming the setting); a diverged or interrupted run stops
with its last checkpoint kept.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from gancore import files, reporting, stops
from gancore.config import CONFIG_SETTINGS, RUN_SETTINGS, Config, ConfigError, UserError
from gancore.settings import JAX, TORCH

# What a resumed run must match: which framework trained it, a custom GAN's description, and the
# settings declared run-defining. A run saved before a setting existed resumes with the value it had.
RUN_FIELDS = ("framework", "model", *RUN_SETTINGS)
RUN_DEFAULTS = {"model": None} | {name: s.resume_default for name, s in RUN_SETTINGS.items()}

EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, stops.EXIT_CODES[signal.SIGINT]


class CheckpointError(UserError):
    """No usable checkpoint, or one that belongs to another run."""


class WriteError(UserError):
    """A file of the run could not be written (a full disk, a folder gone read-only)."""


class Diverged(RuntimeError):
    """A loss or a parameter stopped being finite."""


class Interrupted(Exception):
    """SIGINT (Ctrl-C) or SIGTERM (preemption): a checkpoint was saved and the run stopped."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


def first_line(e: Exception) -> str:
    """An error in one line: its type and the first line of its message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:160]}" if text else type(e).__name__


def prepare_workdir(config: Config, run_info: dict) -> Path:
    """Creates or reopens the workdir; nothing in it is changed when this refuses."""
    workdir = Path(config.workdir)
    saved_path = workdir / "config.json"
    if config.resume:
        if not saved_path.is_file():
            raise ConfigError(f"workdir {workdir} holds no run to resume (no config.json); start it without --resume.")
        check_same_run(read_run_config(saved_path), run_info)
    elif (workdir / "metrics.jsonl").exists() and not config.overwrite:
        raise ConfigError(f"workdir {workdir} already holds a run (metrics.jsonl); continue it with --resume, choose another --workdir or pass --overwrite.")
    if not config.resume:
        files.remove(workdir / "checkpoints")
    for folder in (workdir, workdir / "samples"):  # what writes cut short by a kill left (this process holds the lock)
        if folder.is_dir():
            files.remove_temporaries(folder)
    try:
        for folder in ("samples", "checkpoints"):
            (workdir / folder).mkdir(parents=True, exist_ok=True)
            probe = workdir / folder / ".write-test"
            probe.write_text("")
            probe.unlink()
    except OSError as e:
        raise ConfigError(f"{e.filename or workdir} cannot be written ({e.strerror}); choose a writable --workdir.") from None
    if not config.resume:
        start_afresh(workdir, run_info)
    return workdir


def read_run_config(path: Path) -> dict:
    """A run's config.json; ConfigError when it is not one."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} cannot be read as a run's settings ({e}); restore it or start a new run with --overwrite.") from None
    problem = "it is not a JSON object" if not isinstance(saved, dict) else settings_problem(saved)
    if problem:
        raise ConfigError(f"{path} does not hold a run's settings ({problem}); restore it or start a new run with --overwrite.")
    return saved


def settings_problem(saved: dict) -> str | None:
    """What makes `saved` no run's settings, by the settings' own declarations (a missing one: its default), or None."""
    if saved.get("framework") not in (JAX, TORCH):
        return f"framework is {saved.get('framework')!r}, not {JAX!r} or {TORCH!r}"
    shape = saved.get("image_shape")
    if not (isinstance(shape, list) and shape and all(type(n) is int and n >= 1 for n in shape)):
        return f"image_shape is {shape!r}, not a list of sizes"
    for setting in CONFIG_SETTINGS:
        value = saved.get(setting.name)
        value = tuple(value) if isinstance(value, list) else value
        kind = {int: (int,), float: (int, float), str: (str,), None: (bool,) if setting.flag else (tuple,)}[setting.type]
        typed = value is None or (isinstance(value, kind) and (kind == (bool,) or not isinstance(value, bool)))
        if not typed:
            return f"{setting.name} is {value!r}"
        if problem := setting.problem(value):  # e.g. widths that are not numbers
            return problem.rstrip(".")
    return None


def start_afresh(workdir: Path, run_info: dict) -> None:
    """Nothing of an old run in `workdir` may be taken for this run's (--overwrite, or a resume
    that found no complete checkpoint); checkpoints.corrupt/ is kept."""
    for name in OVERWRITTEN:
        files.remove(workdir / name)
    (workdir / "samples").mkdir()
    (workdir / "metrics.jsonl").unlink(missing_ok=True)
    files.write_text(workdir / "config.json", json.dumps(run_info, indent=2))


# What a new run in the same workdir replaces (--overwrite). The checkpoints folder stays: its
# framework's checkpointer holds it (and removes what it holds on a new run's first save).
OVERWRITTEN = (
    "final_params",
    "best_params",
    "final.pt",
    "samples",
    "progress.gif",
    "interpolation.png",
    "losses.png",
    "eval_samples.png",
    "summary.json",
)


def reopen_for_resume(workdir: Path, run_info: dict) -> None:
    """After a checkpoint was restored: the run continues with its new --epochs etc. The old
    final outputs stay until new ones replace them (summary.json no longer names the run's last epoch)."""
    files.write_text(workdir / "config.json", json.dumps(run_info, indent=2))


def check_same_run(saved: dict, current: dict) -> None:
    """Raises ConfigError naming the first run-defining setting that differs."""
    normalise = lambda v: json.loads(json.dumps(v))
    for field in RUN_FIELDS:
        if field in saved or field in current:
            was, now = (normalise(run.get(field, RUN_DEFAULTS.get(field))) for run in (saved, current))
            if was != now and field == "framework":
                raise ConfigError(
                    f"cannot resume: the run in this workdir was trained by {was}, not {now}; continue it with scripts/train_{was}.py or use another --workdir."
                )
            if was != now and field == "model":
                raise ConfigError(
                    f"cannot resume: the run in this workdir was trained with another GAN ({was or 'the one its config describes'}); "
                    "resume it with the same networks, losses and settings (fit(gan=...)) or use another --workdir."
                )
            if was != now:
                flag = RUN_SETTINGS[field].label if field in RUN_SETTINGS else field
                has = f"has {field}={was!r}" if field in saved else f"has no {field} in its config.json (read as {was!r})"
                raise ConfigError(f"cannot resume: the run in this workdir {has}, this command has {now!r}; use the same {flag} or another --workdir.")


def epoch_record(epoch: int, step: int, means: dict[str, float], seconds: float, n_steps: int) -> dict:
    """One line of metrics.jsonl."""
    return {"epoch": epoch, "step": step, **means, "seconds": round(seconds, 4), "steps_per_s": round(n_steps / seconds, 2)}


def best_evaluation(records: list[dict]) -> dict:
    """{"best_epoch", "best_fid"}: the evaluated epoch of the lowest finite FID (the first of equals); {} when none."""
    evaluated = [r for r in records if isinstance(r.get("fid"), float | int) and math.isfinite(r["fid"])]
    best = min(evaluated, key=lambda r: r["fid"], default=None)
    return {} if best is None else {"best_epoch": best["epoch"], "best_fid": best["fid"]}


def is_best(record: dict, earlier: list[dict]) -> bool:
    """Whether `record` has a finite FID below every earlier record's (the first evaluation is)."""
    fid = record.get("fid")
    return isinstance(fid, float | int) and math.isfinite(fid) and fid < best_evaluation(earlier).get("best_fid", math.inf)


def progress(record: dict) -> dict[str, str]:
    """The progress bar's postfix for an epoch's record."""
    return {
        "d_loss": f"{record['d_loss']:.3f}",
        "g_loss": f"{record['g_loss']:.3f}",
        "d_real": f"{record['d_real']:.3f}",
        "d_fake": f"{record['d_fake']:.3f}",
        "steps_s": f"{record['steps_per_s']:.0f}",
    }


def stop_if_diverged(epoch: int, means: dict[str, float], params_finite: bool, checkpointer) -> None:
    """Raises Diverged, naming the last good checkpoint, when a loss or a parameter is not finite.

    `checkpointer` is either framework's: it has `epochs()` and `directory`.
    """
    if params_finite and all(math.isfinite(v) for v in means.values()):
        return
    saved = checkpointer.epochs()
    raise Diverged(
        f"training diverged in epoch {epoch} (a loss or a parameter is NaN or Inf); "
        + (f"the last good checkpoint is epoch {saved[-1]} in {checkpointer.directory}" if saved else "no checkpoint was saved yet")
        + "; try a lower --lr."
    )


def keep_metrics_through(path: Path, epoch: int) -> list[dict]:
    """Drops metrics.jsonl lines after `epoch` (written after the last checkpoint), atomically."""
    records = reporting.read_metrics(path) if path.exists() else []
    records = [r for r in records if r.get("epoch", epoch + 1) <= epoch]
    files.write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return records


class StopFlag:
    """Turns SIGINT and SIGTERM into a flag the loop checks between calls. Then a second Ctrl-C acts at
    once (the handler from before: `gancore.stops`' exit in the scripts); a repeated SIGTERM changes
    nothing (the checkpoint is being saved; what follows a scheduler's SIGTERM is its SIGKILL)."""

    def __init__(self):
        self.signum: int | None = None

    @property
    def set(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> StopFlag:
        handled = [signum for signum in stops.SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN]  # ignored stays so
        self._previous = {signum: signal.signal(signum, self._handle) for signum in handled}
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum
        if signal.SIGINT in self._previous:
            signal.signal(signal.SIGINT, self._previous[signal.SIGINT])
        print(f"\n{stops.WHAT[signum]}: saving a checkpoint after this call...", file=sys.stderr)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def __exit__(self, *exc) -> None:
        self._restore()
        if self.set and self._previous.get(signal.SIGTERM) is stops.exit_now:  # a script stopping: a late repeat
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # must not cut its last line short


def run_cli(train: Callable[[], Path], done: str = "{workdir}/metrics.jsonl, {workdir}/samples/, {workdir}/losses.png") -> int:
    """Runs a trainer and maps its stops to one line on stderr and an exit code."""
    try:
        workdir = train()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Diverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except Interrupted as e:
        print(f"stopped: {stops.WHAT[e.signum]}; {e}", file=sys.stderr)
        return stops.EXIT_CODES[e.signum]
    except OSError as e:  # a file of the run could not be written or read
        then = "continue with --resume" if stops.run_exists() else "run the same command again"
        print(
            f"error: {e.filename or 'a file'} could not be written or read ({e.strerror or e}); free some space or fix the folder, then {then}.",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # in-process, before the loop took over Ctrl-C (the scripts exit in gancore.stops)
        print(stops.line(signal.SIGINT), file=sys.stderr)
        return EXIT_INTERRUPTED
    print("done: " + done.format(workdir=workdir))
    return 0


class WorkdirLock:
    """One writer per workdir: an exclusive `flock` on WORKDIR/.lock, held for the run's life.

    The kernel drops the lock when its process dies, however it dies, so a lock left
    by a killed run never blocks the next one. Inactive (a no-op) in processes other than 0.
    The holder's PID goes into the file once the run begins (`with lock`): a refused command leaves
    it as it was, and one that made the workdir removes it again (nothing is written).
    """

    def __init__(self, workdir: Path, active: bool = True):
        self.path, self.active, self._fd, self._made = Path(workdir) / ".lock", active, None, False

    def acquire(self) -> None:
        if not self.active or self._fd is not None:
            return
        import fcntl

        self._made = not self.path.parent.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(f"workdir {self.path.parent} cannot be written ({e.strerror}); choose a writable --workdir.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"workdir {self.path.parent} is in use by another run (process {holder}); wait for it to finish, stop it, or choose another --workdir."
            ) from None
        self._fd = fd

    def release(self) -> None:
        """Drops the lock; before the run began, a workdir this lock made (holding no file) goes too."""
        if self._fd is None:
            return
        os.close(self._fd)  # closing drops the flock
        self._fd = None
        workdir = self.path.parent
        if self._made and not any(p.is_file() for p in workdir.rglob("*") if p != self.path):
            files.remove(workdir)

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, str(os.getpid()).encode(), 0)
            except OSError as e:
                self.release()
                raise ConfigError(f"{self.path} cannot be written ({e.strerror}); free some space or choose another --workdir.") from None
            self._made = False  # the run began: its workdir stays
        return self

    def __exit__(self, *exc) -> None:
        self.release()
