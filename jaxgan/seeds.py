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
The program runs on one device of one process; `gancore.loop._train` trains it, as it trains a
single run (this module's `_Run` is its `framework.Members`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gancore import data, files, framework, loop, reporting, resume, runs
from gancore.config import Config, ConfigError, seeds_text
from jaxgan import evaluate, stacked
from jaxgan.build import make_gan
from jaxgan.checkpoint import Checkpointer
from jaxgan.gan import GAN
from jaxgan.step import TrainState, init_train_state
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
    """The members' run: `gancore.loop`'s, once for all of them (its `Members`), each member writing its own folder."""

    freezes = True  # a member that diverges is frozen while the others go on

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
        self.latent_dim, self.num_classes, self.steps_per_epoch = gan.latent_dim, gan.num_classes, trainer.steps_per_epoch
        self.configs, self.infos, self.seeds = members, infos, list(members)
        self.per_seed = [framework.Member(Path(c.workdir), s, evaluate=functools.partial(self.evaluate, seed=s)) for s, c in members.items()]
        self.timing: dict[str, float] = {}
        self.blocked: dict[str, list[float]] = {"grids": [], "checkpoints": []}
        self.checkpointer: Checkpointer

    def train_epochs(self, k: int) -> tuple[list[list[dict[str, float]]], np.ndarray]:
        return self.trainer.train_epochs(k)

    def step(self) -> int:
        return self.trainer.step()

    def snapshot(self) -> TrainState:
        return self.trainer.state

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
                runs.start_afresh(Path(self.configs[s].workdir), self.infos[s])
            return 1
        state, meta = restored
        epoch = meta["epoch"]
        if epoch > self.config.epochs or (epoch == self.config.epochs and _table(top).get("epoch") == epoch):
            raise ConfigError(f"the runs in {top} are already at epoch {epoch}; pass --epochs above {epoch} to continue them.")
        runs.reopen_for_resume(top, self.top_info)  # config.json: the run goes on with this --epochs etc.
        stopped = {int(s): e for s, e in meta["config"].get("stopped", {}).items()}
        self.trainer.load(state, np.array([s not in stopped for s in self.seeds]))
        for member in self.per_seed:
            (member.workdir / "samples").mkdir(parents=True, exist_ok=True)
            runs.reopen_for_resume(member.workdir, self.infos[member.seed])
            member.records, member.stopped = runs.keep_metrics_through(member.workdir / "metrics.jsonl", epoch), stopped.get(member.seed)
        for view, member in zip(self.views(), self.per_seed, strict=True):
            if member.stopped is None:  # a frozen member drew no grid after it stopped
                loop.redraw_lost_grid(self.configs[member.seed], view, epoch)
        print(f"resuming the {len(self.seeds)} seeds in {top} from epoch {epoch} (step {meta['step']})")
        return epoch + 1

    def train(self, first_epoch: int) -> None:
        loop._train(self.config, self.top_info, self, self.checkpointer, loop.Team(), first_epoch, self.per_seed, self.timing, self.blocked)

    def evaluate(self, view: JaxTrainer, seed: int) -> dict:
        """A member's sample quality, as `jaxgan.fit` evaluates the run of its seed."""
        return evaluate.evaluate_generator(self.gan, jax.device_get(view.sampling_params()), self.config.eval_n, seed)

    def finish(self) -> None:
        """Each member's final pictures, params and summary.json, then the table of members (seeds.json last)."""
        rows = []
        for view, member in zip(self.views(), self.per_seed, strict=True):
            records = member.records
            loop._finish(self.configs[member.seed], view, member.workdir, records, loop.Team(), title=f"jaxgan, seed {member.seed}")
            last = records[-1] if records else {}
            summary = {"epoch": last.get("epoch", 0), "step": last.get("step", 0), **runs.best_evaluation(records)}
            summary |= {"diverged_in_epoch": member.stopped} if member.stopped else {}
            files.write_text(member.workdir / "summary.json", json.dumps(summary, indent=2))
            evaluated = [r for r in records if "fid" in r]
            rows.append(
                {
                    "seed": member.seed,
                    "epoch": summary["epoch"],
                    "step": summary["step"],
                    **{key: last.get(key) for key in reporting.METRIC_KEYS},
                    "fid": evaluated[-1]["fid"] if evaluated else None,
                    **runs.best_evaluation(records),
                    "diverged_in_epoch": member.stopped,
                    "folder": member.workdir.name,
                }
            )
        top = Path(self.config.workdir)
        table = {
            "epoch": self.config.epochs,
            "seeds": self.seeds,
            "steps_per_epoch": self.trainer.steps_per_epoch,
            "seconds": {k: round(v, 3) for k, v in self.timing.items()},
            "blocking_writes": {kind: loop._seconds_each(s) for kind, s in self.blocked.items()},
            "members": rows,
        }
        files.write_text(top / "seeds.md", markdown(table))
        files.write_text(top / "seeds.json", json.dumps(table, indent=2))
        if any(member.stopped for member in self.per_seed):
            print(f"stopped: {loop.stops(self.per_seed)}; the other seeds trained to epoch {self.config.epochs}.")


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
