"""`--seeds`: K runs of one configuration, one a seed, trained as one compiled program (`jaxgan.stacked`).

WORKDIR/seed_S/ is member S's run folder, the one `--seed S --workdir WORKDIR/seed_S` writes
(config.json with its seed, metrics.jsonl, TensorBoard events, samples/, losses.png, progress.gif,
interpolation.png, final_params/, best_params/ with --eval-every, summary.json), so that
scripts/evaluate.py reads it as any run. WORKDIR holds config.json (the seeds), the table of
members (seeds.json, and seeds.md to read) and the checkpoints, each one Orbax checkpoint of the
stacked state: the members are always at one epoch, so a checkpoint is one atomic write with
one digest, `--resume` restores every member from the same intact epoch (`gancore.resume`), and
its meta records which members had stopped. A member that diverges stops there: metrics.jsonl
ends at its last finite epoch, its state stays frozen at it (final_params), the others go on.
The program runs on one device of one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gancore import data, files, loop, reporting, resume, runs, summaries
from gancore.config import Config, ConfigError, seeds_text
from jaxgan import evaluate, stacked
from jaxgan.build import make_gan
from jaxgan.checkpoint import Checkpointer
from jaxgan.gan import GAN
from jaxgan.step import init_train_state
from jaxgan.trainer import JaxTrainer, run_record


def fit(config: Config, *, dtype=None, prng_impl: str = "threefry2x32", devices: int | None = None, per_step: bool | None = None, dense: str = "xla") -> Path:
    """Trains (or resumes) the seeds of `config.seeds` as one program; returns the workdir. As
    `jaxgan.fit.fit`; raises runs.Diverged only when every member diverged."""
    if jax.process_count() > 1 or (devices or 1) > 1:
        raise ConfigError("--seeds trains every seed on one device of one process; leave out --devices and the multi-process flags.")
    seeds = config.member_seeds
    config = dataclasses.replace(config, seed=seeds[0], seeds=seeds_text(seeds))  # "3" and "0,1,2" are one run
    train = data.load("train", dataset=config.dataset, data_dir=config.data_dir, digit=config.digit, subset=config.subset)
    image_shape, num_classes = train.image_shape, int(train.labels_N.max()) + 1
    config.check_data_size(len(train), image_shape)
    gan = make_gan(config, int(np.prod(image_shape)), dtype, image_shape=image_shape, num_classes=num_classes, dense=dense)
    top = Path(config.workdir)
    members = {s: dataclasses.replace(config, seed=s, seeds=None, workdir=str(top / f"seed_{s}")) for s in seeds}
    # config.json as jaxgan.fit writes it for the run of each seed.
    info = lambda c: run_record(c, gan, image_shape, dtype=dtype, prng_impl=prng_impl, dense=dense, devices=1)
    infos = {s: info(c) for s, c in members.items()}
    states = [init_train_state(gan, s, prng_impl) for s in seeds]  # one compiled program for every seed
    if per_step is None:
        per_step = config.arch == "dcgan" and jax.default_backend() == "cpu"
    # On the CPU, XLA runs a vmapped convolution (grouped, a group a member) slowly: the members' steps are written out instead.
    unrolled = per_step and jax.default_backend() == "cpu"
    run_epoch = stacked.compile_epoch(stacked.stack(states), config.batch_size, per_step, unrolled)
    labels_N = jnp.asarray(train.labels_N.astype(np.int32)) if gan.num_classes else None
    trainer = stacked.Stacked(states, run_epoch, jnp.asarray(train.flat_NxD), labels_N, data.steps_per_epoch(len(train), config.batch_size, gan.d_steps))
    with runs.WorkdirLock(top):
        _prepare(config, info(config), members, infos)
        run = _Run(config, info(config), gan, image_shape, trainer, members, infos)
        with contextlib.closing(Checkpointer(top, keep=config.keep_checkpoints)) as run.checkpointer:
            first_epoch = run.resume() if config.resume else 1
            if first_epoch <= config.epochs:
                run.train(first_epoch)
            run.finish()
    return top


def _prepare(config: Config, top_info: dict, members: dict[int, Config], infos: dict[int, dict]) -> None:
    """Creates or reopens the workdir and every member's folder; refuses (ConfigError) before writing anything."""
    top = Path(config.workdir)
    held = [p for p in (top / "config.json", *(Path(c.workdir) / "metrics.jsonl" for c in members.values())) if p.exists()]
    if held and not (config.resume or config.overwrite):
        raise ConfigError(f"workdir {top} already holds a run ({held[0]}); continue it with --resume, choose another --workdir or pass --overwrite.")
    runs.prepare_workdir(config, top_info)  # with --resume, refuses a run of other settings or other seeds
    if not config.resume:
        for s, c in members.items():
            runs.prepare_workdir(dataclasses.replace(c, overwrite=True), infos[s])
    for unused in (top / "samples", *(Path(c.workdir) / "checkpoints" for c in members.values())):
        with contextlib.suppress(OSError):  # made by prepare_workdir: the grids are the members', the checkpoints the workdir's
            unused.rmdir()


class _Run:
    """The life of the members' run: `gancore.loop`'s, once for all of them, each member writing its own folder."""

    def __init__(
        self,
        config: Config,
        top_info: dict,
        gan: GAN,
        image_shape: tuple[int, ...],
        trainer: stacked.Stacked,
        members: dict[int, Config],
        infos: dict[int, dict],
    ):
        self.config, self.top_info, self.gan, self.image_shape, self.trainer = config, top_info, gan, image_shape, trainer
        self.members, self.infos, self.seeds = members, infos, list(members)
        self.records: dict[int, list[dict]] = {s: [] for s in self.seeds}
        self.stopped: dict[int, int] = {}  # seed -> the epoch in which it diverged
        self.timing = {"first_call_s": 0.0, "train_s": 0.0, "write_s": 0.0}
        self.checkpointer: Checkpointer

    def folder(self, seed: int) -> Path:
        return Path(self.members[seed].workdir)

    def views(self) -> list[JaxTrainer]:
        """Each member as a single run's trainer (for its grids, evaluations and final files), from one host copy."""
        host = jax.device_get(self.trainer.state)
        views = [JaxTrainer(self.gan, None, None, None, None, self.image_shape, self.trainer.steps_per_epoch) for _ in self.seeds]
        for k, view in enumerate(views):
            view.load(stacked.member(host, k))
        return views

    def resume(self) -> int:
        """The first epoch to train, after restoring the newest intact stacked checkpoint (as `gancore.resume.resume_run`)."""
        top = Path(self.config.workdir)
        restored = resume.restore_latest(self.checkpointer, self.trainer.state)
        if restored is None:
            runs.reopen_for_resume(top, self.top_info)
            print(f"{top} holds no complete checkpoint (the run stopped before its first one): starting it afresh from epoch 1.")
            for s in self.seeds:
                runs.start_afresh(self.folder(s), self.infos[s])
            return 1
        state, meta = restored
        epoch = meta["epoch"]
        if epoch > self.config.epochs or (epoch == self.config.epochs and _table(top).get("epoch") == epoch):
            raise ConfigError(f"the runs in {top} are already at epoch {epoch}; pass --epochs above {epoch} to continue them.")
        runs.reopen_for_resume(top, self.top_info)  # config.json: the run goes on with this --epochs etc.
        self.stopped = {int(s): e for s, e in meta["config"].get("stopped", {}).items()}
        self.trainer.load(state, np.array([s not in self.stopped for s in self.seeds]))
        for s in self.seeds:
            (self.folder(s) / "samples").mkdir(parents=True, exist_ok=True)
            runs.reopen_for_resume(self.folder(s), self.infos[s])
            self.records[s] = runs.keep_metrics_through(self.folder(s) / "metrics.jsonl", epoch)
        print(f"resuming the {len(self.seeds)} seeds in {top} from epoch {epoch} (step {meta['step']})")
        return epoch + 1

    def train(self, first_epoch: int) -> None:
        config, trainer, seeds = self.config, self.trainer, self.seeds
        grids = {s: reporting.sample_grid_inputs(self.gan.latent_dim, self.gan.num_classes, s) for s in seeds}
        epoch, epoch_seconds, saved = first_epoch, None, None
        bar = tqdm(total=config.epochs, initial=first_epoch - 1, unit="epoch")
        with contextlib.ExitStack() as stack, runs.StopFlag() as stop, bar:
            logs = {s: stack.enter_context(reporting.MetricsLog(self.folder(s) / "metrics.jsonl", append=config.resume)) for s in seeds}
            boards = {s: stack.enter_context(summaries.TensorBoard(self.folder(s), first_epoch)) for s in seeds}
            while epoch <= config.epochs:
                k = loop._epochs_per_call(config, epoch, epoch_seconds, bool(config.eval_every))
                start = time.perf_counter()
                per_epoch, alive_ExK = trainer.train_epochs(k)
                seconds = time.perf_counter() - start
                self.timing["first_call_s" if epoch == first_epoch else "train_s"] += seconds
                loop._settle(self.checkpointer, saved, self.timing)
                epoch_seconds, last_step = seconds / k, trainer.step()
                for i, per_member in enumerate(per_epoch):
                    step = last_step - (k - 1 - i) * trainer.steps_per_epoch
                    # Of the state at the call's end, which is this epoch's.
                    views = self.views() if i == k - 1 and config.eval_every and epoch % config.eval_every == 0 else None
                    for m, s in enumerate(seeds):
                        if s in self.stopped:
                            continue
                        if not alive_ExK[i, m]:
                            self.stopped[s] = epoch
                            tqdm.write(f"seed {s} diverged in epoch {epoch} (a loss or a parameter is NaN or Inf); it stops there, the others go on.")
                            continue
                        record = runs.epoch_record(epoch, step, per_member[m], epoch_seconds, trainer.steps_per_epoch)
                        if views:
                            record |= self.evaluate(views[m], s)
                            if runs.is_best(record, self.records[s]):
                                views[m].save_best(self.folder(s))
                        logs[s].write(record)
                        boards[s].scalars(record)
                        self.records[s].append(record)
                    epoch += 1
                written, epoch = time.perf_counter(), epoch - 1
                bar.update(k)
                bar.set_postfix(seeds_alive=len(seeds) - len(self.stopped), steps_s=f"{trainer.steps_per_epoch / epoch_seconds:.0f}")
                if epoch % config.sample_every == 0 or epoch == config.epochs:
                    for view, s in zip(self.views(), seeds):
                        if s not in self.stopped:
                            png = self.folder(s) / "samples" / f"epoch_{epoch:04d}.png"
                            reporting.save_grid(view.sample(*grids[s][:2]), png, self.image_shape, grids[s][2])
                            boards[s].image("samples", png, epoch)
                if len(self.stopped) == len(seeds):
                    loop._settle(self.checkpointer, saved, self.timing)
                    kept = self.checkpointer.epochs()
                    raise runs.Diverged(
                        f"every seed diverged ({_stops(self.stopped)}); "
                        + (f"the last good checkpoint is epoch {kept[-1]} in {self.checkpointer.directory}" if kept else "no checkpoint was saved yet")
                        + "; try a lower --lr."
                    )
                if epoch % config.checkpoint_every == 0 or epoch == config.epochs or stop.set:
                    with loop._writing(self.checkpointer, epoch):
                        stopped = {str(s): e for s, e in self.stopped.items()}
                        self.checkpointer.save(epoch, trainer.state, self.top_info | {"stopped": stopped})
                    saved = epoch
                self.timing["write_s"] += time.perf_counter() - written
                if stop.set:
                    loop._settle(self.checkpointer, saved, self.timing)
                    raise runs.Interrupted(f"checkpoint of epoch {epoch} saved in {self.checkpointer.directory}; continue with --resume.", stop.signum)
                epoch += 1
            loop._settle(self.checkpointer, saved, self.timing)

    def evaluate(self, view: JaxTrainer, seed: int) -> dict:
        """A member's sample quality, as `jaxgan.fit` evaluates the run of its seed."""
        return evaluate.evaluate_generator(self.gan, jax.device_get(view.sampling_params()), self.config.eval_n, seed)

    def finish(self) -> None:
        """Each member's final pictures, params and summary.json, then the table of members (seeds.json last)."""
        members = []
        for view, s in zip(self.views(), self.seeds):
            records = self.records[s]
            loop._finish(self.members[s], view, self.folder(s), records, loop.Team(), title=f"jaxgan, seed {s}")
            last = records[-1] if records else {}
            summary = {"epoch": last.get("epoch", 0), "step": last.get("step", 0), **runs.best_evaluation(records)}
            summary |= {"diverged_in_epoch": self.stopped[s]} if s in self.stopped else {}
            files.write_text(self.folder(s) / "summary.json", json.dumps(summary, indent=2))
            evaluated = [r for r in records if "fid" in r]
            members.append(
                {
                    "seed": s,
                    "epoch": summary["epoch"],
                    "step": summary["step"],
                    **{key: last.get(key) for key in reporting.METRIC_KEYS},
                    "fid": evaluated[-1]["fid"] if evaluated else None,
                    **runs.best_evaluation(records),
                    "diverged_in_epoch": self.stopped.get(s),
                    "folder": self.folder(s).name,
                }
            )
        top = Path(self.config.workdir)
        timing = {k: round(v, 3) for k, v in self.timing.items()}
        table = {"epoch": self.config.epochs, "seeds": self.seeds, "steps_per_epoch": self.trainer.steps_per_epoch, "seconds": timing, "members": members}
        files.write_text(top / "seeds.md", markdown(table))
        files.write_text(top / "seeds.json", json.dumps(table, indent=2))
        if self.stopped:
            print(f"stopped: {_stops(self.stopped)}; the other seeds trained to epoch {self.config.epochs}.")


def _stops(stopped: dict[int, int]) -> str:
    return ", ".join(f"seed {s} diverged in epoch {e}" for s, e in sorted(stopped.items()))


def _table(top: Path) -> dict:
    """The workdir's seeds.json ({} when there is none yet)."""
    try:
        return json.loads((top / "seeds.json").read_text())
    except (OSError, ValueError):
        return {}


def markdown(table: dict) -> str:
    """seeds.md: one row a member (its last epoch's figures, its last and best FID, where it stopped), then mean ± sd."""
    keys = ("d_loss", "g_loss", "d_real", "d_fake", "fid", "best_fid")
    cell = lambda v: "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| seed | epoch | step | " + " | ".join(keys) + " | stopped |", "|---" * (len(keys) + 4) + "|"]
    for r in table["members"]:
        stop = f"diverged in epoch {r['diverged_in_epoch']}" if r["diverged_in_epoch"] else ""
        lines.append(f"| {r['seed']} | {r['epoch']} | {r['step']} | " + " | ".join(cell(r.get(k)) for k in keys) + f" | {stop} |")
    finished = [r for r in table["members"] if not r["diverged_in_epoch"]]
    if len(finished) > 1:
        spread = lambda k: [r[k] for r in finished if isinstance(r.get(k), float) and math.isfinite(r[k])]
        stats = [f"{np.mean(v):.4g} ± {np.std(v, ddof=1):.2g}" if len(v) > 1 else "" for v in map(spread, keys)]
        lines.append(f"| mean ± sd ({len(finished)} seeds) | | | " + " | ".join(stats) + " | |")
    return "\n".join(lines) + "\n"
