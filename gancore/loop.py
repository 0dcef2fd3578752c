"""The life of a run, the same for both frameworks (NumPy and the standard library only).

`run(config, run_info, trainer)` owns the workdir: it refuses or reopens it, resumes from the
newest intact checkpoint (`gancore.resume`), trains epoch by epoch through the framework's
`Trainer`, writes metrics.jsonl, TensorBoard events, the progress bar, sample grids and
checkpoints (each written while the next call trains; and the params of the best FID; grids,
TensorBoard events and final pictures by a writer thread, `gancore.background`), stops on Ctrl-C
or divergence, and writes the final pictures, the final params and `summary.json` (written
last: a run whose summary names its last checkpoint's epoch is finished).

`_train` is the one epoch loop: of a single run (one `Member`) and of jaxgan's `--seeds`
(`jaxgan.seeds`: K members trained as one program, each writing its own folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gancore import background, files, reporting, resume, runs, summaries
from gancore.config import Config, ConfigError
from gancore.framework import Checkpointer, Member, Members, Single, Team, Trainer

INTERPOLATION_STEPS = 10
CALL_SECONDS = 2.0  # the most a call of several epochs should take, by the last call's pace


def run(
    config: Config,
    run_info: dict,
    trainer: Trainer,
    *,
    title: str,
    team: Team = Team(),
    evaluate: Callable[[], dict] | None = None,
    report: Callable[[], dict] | None = None,
) -> Path:
    """Trains (or resumes, or finishes) the run `config` describes in its workdir; returns the workdir.

    `evaluate()` (process 0, every --eval-every epochs) returns figures added to the epoch's record;
    at a lowest "fid" so far every process calls `trainer.save_best`. `report()`: more entries for
    summary.json (e.g. the XLA compilations). Raises ConfigError before
    anything is written on bad input; runs.Diverged or runs.Interrupted after saving what was good.
    """
    started = time.perf_counter()
    workdir = Path(config.workdir)
    lock = runs.WorkdirLock(workdir, active=team.is_main)
    refusal = None
    if team.is_main:
        try:
            lock.acquire()
            runs.prepare_workdir(config, run_info)
        except ConfigError as e:
            refusal = str(e)
    refusal = team.share(refusal)
    if refusal:
        lock.release()
        raise ConfigError(refusal)
    with lock, contextlib.closing(trainer.open_checkpointer(workdir, config.keep_checkpoints)) as checkpointer:
        first_epoch, records = resume.resume_run(config, run_info, trainer, checkpointer, team) if config.resume else (1, [])
        if team.is_main and first_epoch > 1:
            redraw_lost_grid(config, trainer, first_epoch - 1)
        timing = {"startup_s": _process_age() - (time.perf_counter() - started), "setup_s": time.perf_counter() - started}
        blocked = {"grids": [], "checkpoints": []}  # seconds the loop waited on each write
        member = Member(workdir, config.seed, records, None if evaluate is None else lambda _trainer: evaluate())
        if first_epoch <= config.epochs:
            _train(config, run_info, Single(trainer), checkpointer, team, first_epoch, [member], timing, blocked)
        records = member.records
        write_started = time.perf_counter()
        _finish(config, trainer, workdir, records, team, title)
        timing["final_outputs_s"] = time.perf_counter() - write_started
        timing["total_s"] = time.perf_counter() - started
        if team.is_main:
            summary = {
                "epoch": config.epochs,
                "step": trainer.step(),
                **runs.best_evaluation(records),
                "seconds": {k: round(v, 3) for k, v in timing.items()},
                "blocking_writes": {kind: _seconds_each(s) for kind, s in blocked.items()},
                **(report() if report else {}),
            }
            files.write_text(workdir / "summary.json", json.dumps(summary, indent=2))
    return workdir


def stops(members: list[Member]) -> str:
    """Which members diverged, and when."""
    return ", ".join(f"seed {m.seed} diverged in epoch {m.stopped}" for m in sorted(members, key=lambda m: m.seed) if m.stopped)


def _process_age() -> float:
    """Seconds since this process started (imports, data, building the GAN); 0 where /proc is missing."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return 0.0


def _train(config, run_info, trainer: Members, checkpointer, team, first_epoch, members: list[Member], timing, blocked) -> None:
    """Trains the members from `first_epoch` to --epochs, each writing its own folder; checkpoints
    `trainer` whole, with the members that stopped in its meta."""
    main = team.is_main
    grids = [reporting.sample_grid_inputs(trainer.latent_dim, trainer.num_classes, member.seed) for member in members]
    bar = tqdm(total=config.epochs, initial=first_epoch - 1, unit="epoch", disable=not main)
    evaluates = any(member.evaluate for member in members)
    timing.update(first_call_s=0.0, train_s=0.0, write_s=0.0)
    epoch, epoch_seconds, saved = first_epoch, None, None  # saved: the epoch of the last checkpoint begun
    # The writer is left first: its queued writes finish before TensorBoard closes.
    with contextlib.ExitStack() as stack, runs.StopFlag() as stop, bar, background.Writer() as writer:
        logs = [stack.enter_context(reporting.MetricsLog(m.workdir / "metrics.jsonl", append=config.resume) if main else _Silent()) for m in members]
        boards = [stack.enter_context(summaries.TensorBoard(m.workdir, first_epoch) if main else _Silent()) for m in members]
        for board in boards:
            writer.submit(board.open)  # its imports and files off the way to the first call
        while epoch <= config.epochs:
            k = _epochs_per_call(config, epoch, epoch_seconds, evaluates)
            start = time.perf_counter()
            per_epoch, alive_ExK = trainer.train_epochs(k)
            seconds = time.perf_counter() - start
            timing["first_call_s" if epoch == first_epoch else "train_s"] += seconds
            _settle(checkpointer, saved, timing, blocked)  # the last checkpoint was written while this call trained
            epoch_seconds, last_step = seconds / k, trainer.step()
            for i, per_member in enumerate(per_epoch):
                step = last_step - (k - 1 - i) * trainer.steps_per_epoch
                # Of the state at the call's end, which is this epoch's.
                views = trainer.views() if i == k - 1 and evaluates and config.eval_every and epoch % config.eval_every == 0 else None
                for m, (member, means) in enumerate(zip(members, per_member, strict=True)):
                    if member.stopped:
                        continue
                    if not trainer.freezes:  # a single run: its divergence stops it
                        runs.stop_if_diverged(epoch, means, alive_ExK[i][m], checkpointer)
                    elif not alive_ExK[i][m]:
                        member.stopped = epoch
                        tqdm.write(f"seed {member.seed} diverged in epoch {epoch} (a loss or a parameter is NaN or Inf); it stops there, the others go on.")
                        continue
                    record = runs.epoch_record(epoch, step, means, epoch_seconds, trainer.steps_per_epoch)
                    if views and member.evaluate:
                        record |= member.evaluate(views[m]) if main else {}
                        if team.share("best" if runs.is_best(record, member.records) else None):  # process 0's verdict; all save
                            views[m].save_best(member.workdir)
                    logs[m].write(record)
                    writer.submit(boards[m].scalars, record)
                    member.records.append(record)
                epoch += 1
            written, epoch = time.perf_counter(), epoch - 1  # the last epoch trained
            bar.update(k)
            alive = [m for m in members if not m.stopped]
            if trainer.freezes:
                bar.set_postfix(seeds_alive=len(alive), steps_s=f"{trainer.steps_per_epoch / epoch_seconds:.0f}")
            else:
                bar.set_postfix(runs.progress(alive[0].records[-1]))
            if not alive:
                _settle(checkpointer, saved, timing, blocked)
                kept = checkpointer.epochs()
                raise runs.Diverged(
                    f"every seed diverged ({stops(members)}); "
                    + (f"the last good checkpoint is epoch {kept[-1]} in {checkpointer.directory}" if kept else "no checkpoint was saved yet")
                    + "; try a lower --lr."
                )
            checkpoint = epoch % config.checkpoint_every == 0 or epoch == config.epochs or stop.set
            if checkpoint:
                # The grids before this epoch's reach the disk before its checkpoint does (a resume redraws
                # only the checkpoint's own); a write that failed stops the run here.
                writer.drain()
            drained = time.perf_counter()
            if main and _draws_grid(config, epoch):
                views = views or trainer.views()  # the last epoch's evaluation took them of this same state
                for m, member in enumerate(members):
                    if not member.stopped:
                        z_grid, grid_labels, grid_cols = grids[m]
                        samples = views[m].sample(z_grid, grid_labels)  # drawn on the device while the writer waits for it
                        writer.submit(_write_grid, boards[m], samples, _grid_path(member.workdir, epoch), trainer.image_shape, grid_cols, epoch)
                blocked["grids"].append(time.perf_counter() - drained)
            if checkpoint:
                saving = time.perf_counter()
                with _writing(checkpointer, epoch):
                    stopped = {"stopped": {str(m.seed): m.stopped for m in members if m.stopped}} if trainer.freezes else {}
                    checkpointer.save(epoch, trainer.snapshot(), run_info | stopped)
                saved = epoch
                blocked["checkpoints"].append(drained - written + time.perf_counter() - saving)
            timing["write_s"] += time.perf_counter() - written
            if stop.set:
                writer.drain()
                _settle(checkpointer, saved, timing, blocked)
                raise runs.Interrupted(f"checkpoint of epoch {epoch} saved in {checkpointer.directory}; continue with --resume.", stop.signum)
            epoch += 1
        drained = time.perf_counter()
        writer.drain()
        timing["write_s"] += time.perf_counter() - drained
        _settle(checkpointer, saved, timing, blocked)


def _draws_grid(config: Config, epoch: int) -> bool:
    return epoch % config.sample_every == 0 or epoch == config.epochs


def _grid_path(workdir: Path, epoch: int) -> Path:
    return workdir / "samples" / f"epoch_{epoch:04d}.png"


def _write_grid(tensorboard, samples_NxD, png: Path, image_shape: tuple[int, ...], cols: int | None, epoch: int) -> None:
    """The grid's PNG, whole or not at all (a resume redraws a missing one), then its TensorBoard image."""
    try:
        with files.atomic_path(png) as tmp:
            reporting.save_grid(samples_NxD, tmp, image_shape, cols)
    except OSError as e:  # named by the grid's own path, not by the temporary one
        raise OSError(e.errno, e.strerror, str(png)) from None
    tensorboard.image("samples", png, epoch)


def redraw_lost_grid(config: Config, trainer: Trainer, epoch: int) -> None:
    """The grid of the checkpoint a run resumes from, when the process was killed before writing it."""
    png = _grid_path(Path(config.workdir), epoch)
    if _draws_grid(config, epoch) and not png.exists():
        z_grid, grid_labels, grid_cols = reporting.sample_grid_inputs(trainer.latent_dim, trainer.num_classes, config.seed)
        with files.atomic_path(png) as tmp:
            reporting.save_grid(trainer.sample(z_grid, grid_labels), tmp, trainer.image_shape, grid_cols)


def _seconds_each(seconds: list[float]) -> dict:
    return {"count": len(seconds), "total_s": round(sum(seconds), 3), "max_s": round(max(seconds, default=0.0), 3)}


def _epochs_per_call(config: Config, epoch: int, epoch_seconds: float | None, evaluates: bool) -> int:
    """How many epochs the next call trains: up to the next epoch that writes something (a grid,
    a checkpoint, an evaluation, the end), and no more than about CALL_SECONDS, so that Ctrl-C
    is answered soon. The first call is one epoch: it holds the compilation."""
    if epoch_seconds is None:
        return 1
    events = [config.sample_every, config.checkpoint_every] + ([config.eval_every] if evaluates and config.eval_every else [])
    to_event = min(every - (epoch - 1) % every for every in events)
    by_time = max(1, int(CALL_SECONDS / max(epoch_seconds, 1e-9)))
    return min(to_event, by_time, config.epochs - epoch + 1)


def _settle(checkpointer: Checkpointer, epoch: int | None, timing: dict, blocked: dict) -> None:
    """Waits until the checkpoint of `epoch` (None: none begun) is on disk; the wait counts as writing it."""
    started = time.perf_counter()
    with _writing(checkpointer, epoch):
        checkpointer.wait()
    waited = time.perf_counter() - started
    timing["write_s"] += waited
    if epoch is not None and blocked["checkpoints"]:
        blocked["checkpoints"][-1] += waited


@contextlib.contextmanager
def _writing(checkpointer: Checkpointer, epoch: int | None):
    """Turns a failure to save or finish the checkpoint of `epoch` (a full disk, a folder gone
    read-only: Orbax and torch report these in many forms) into one sentence saying what is kept."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - every way a save fails ends the same way
        kept = [saved for saved in checkpointer.epochs() if saved != epoch]
        raise runs.WriteError(
            f"the checkpoint of epoch {epoch} could not be written to {checkpointer.directory} ({runs.first_line(e)}"
            f"{'; the disk is full' if files.disk_full(checkpointer.directory) else ''}); "
            + (f"the checkpoint of epoch {kept[-1]} is kept" if kept else "no checkpoint was saved yet")
            + ": free some space or fix the folder, then continue with --resume."
        ) from None


def _finish(config: Config, trainer: Trainer, workdir: Path, records: list[dict], team: Team, title: str) -> None:
    """The final pictures (process 0, in the writer thread) while the final params are saved (every process
    takes part), each replacing an old one only when complete."""
    with background.Writer() as writer:
        if team.is_main:
            writer.submit(_atomic, workdir / "losses.png", lambda tmp: reporting.plot_losses(records, tmp, title=title))
            writer.submit(_atomic, workdir / "progress.gif", lambda tmp: summaries.save_progress_gif(workdir / "samples", tmp, config.epochs))
            row_labels = lambda n: reporting.classes_in_turn(trainer.num_classes, n, every=INTERPOLATION_STEPS) if trainer.num_classes else None
            draw = lambda z: trainer.sample(z, row_labels(len(z)))
            writer.submit(
                _atomic,
                workdir / "interpolation.png",
                lambda tmp: summaries.save_interpolation(draw, tmp, trainer.image_shape, trainer.latent_dim, config.seed, steps=INTERPOLATION_STEPS),
            )
        trainer.save_final(workdir)
        writer.drain()


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    with files.atomic_path(path) as tmp:
        write(tmp)


class _Silent:
    """The metrics log and TensorBoard writer of a process other than 0: writes nothing."""

    def write(self, record: dict) -> None:
        pass

    def open(self) -> None:
        pass

    def scalars(self, record: dict) -> None:
        pass

    def image(self, tag: str, png: Path, step: int) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc) -> None:
        pass
