"""Real SIGINT and SIGTERM at chosen moments (start-up, mid-epoch, mid-save), each followed by a
--resume that ends bit for bit as an uninterrupted run; and a stop's one line and exit code."""

import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from test_robustness import DATA, SMALL, assert_same_run, losses, train

EVERY = ["--checkpoint-every", "2"]  # a stop's checkpoint is then one the schedule would not have saved

# Code run before the script (as __main__, so that it installs gancore.stops first); each sends the
# signal from inside the process at a known moment.
MID_EPOCH = {  # during the first call of epochs (it holds the compilation), before it trains
    "train_jax": "import jaxgan.fit as m; cls = m.JaxTrainer\n",
    "train_torch": "import torch_baseline.train as m; cls = m.TorchTrainer\n",
}
MID_EPOCH_CODE = (
    "real, calls = cls.train_epochs, []\n"
    "def train_epochs(self, k):\n"
    "    calls.append(k)\n"
    "    if len(calls) == 1: os.kill(os.getpid(), SIGNUM)\n"
    "    return real(self, k)\n"
    "cls.train_epochs = train_epochs\n"
)
MID_SAVE = {
    # Orbax finalises a checkpoint in its background thread: signal there (at each of its items: a
    # repeated SIGTERM), then let it finish.
    "train_jax": (
        "from orbax.checkpoint._src.path import atomicity\n"
        "def patch(cls):\n"
        "    real = cls.finalize\n"
        "    async def finalize(self, *a, **k):\n"
        "        os.kill(os.getpid(), SIGNUM)\n"
        "        return await real(self, *a, **k)\n"
        "    cls.finalize = finalize\n"
        "patch(atomicity.AtomicRenameTemporaryPath); patch(atomicity.CommitFileTemporaryPath)\n"
    ),
    # torch_baseline renames its written temporary file over epoch_NNNNNN.pt: signal just before.
    "train_torch": (
        "import gancore.files\n"
        "real = gancore.files.os.replace\n"
        "def replace(src, dst):\n"
        "    if str(dst).endswith('.pt'): os.kill(os.getpid(), SIGNUM)\n"
        "    real(src, dst)\n"
        "gancore.files.os.replace = replace\n"
    ),
}

# In start-up: once the flags named the workdir, before the framework's imports (a fixed sleep before an
# outside signal raced the interpreter's start on a loaded machine, landing before the flags were read).
IN_START_UP = (
    "import gancore.stops\n"
    "real_watch = gancore.stops.watch\n"
    "def watch(workdir):\n"
    "    real_watch(workdir)\n"
    "    if workdir is not None: os.kill(os.getpid(), SIGNUM)\n"  # install() watches None first
    "gancore.stops.watch = watch\n"
)


def launch(script, workdir, epochs, *extra, inject="", signum=signal.SIGTERM):
    argv = [str(ROOT / "scripts" / f"{script}.py"), *SMALL, *DATA, *EVERY, "--epochs", str(epochs), "--workdir", str(workdir), *extra]
    code = f"import os, runpy, sys\nSIGNUM = {int(signum)}\n{inject}sys.argv = {argv!r}\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stopped(proc, timeout=300) -> tuple[int, list[str]]:
    """The exit code and the lines of stderr (the progress bar's carriage returns split too)."""
    _, err = proc.communicate(timeout=timeout)
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert "Traceback" not in err and "Exception ignored" not in err, err
    return proc.returncode, lines


@pytest.fixture(scope="module", params=["train_jax", "train_torch"])
def reference(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference") / request.param
    assert train(request.param, workdir, 6, *EVERY) == 0
    return request.param, workdir


def test_sigterm_mid_epoch_sigint_in_start_up_sigterm_mid_save_then_resume_is_bit_for_bit(reference, tmp_path):
    script, uninterrupted = reference
    run = tmp_path / "run"
    code, err = stopped(launch(script, run, 6, inject=MID_EPOCH[script] + MID_EPOCH_CODE))
    assert code == 143, err
    assert err[-1] == f"stopped: terminated (SIGTERM); checkpoint of epoch 1 saved in {run / 'checkpoints'}; continue with --resume."
    assert len(losses(run)) == 1  # the call in flight finished; its epoch is checkpointed although --checkpoint-every is 2

    before = (run / "metrics.jsonl").read_text()
    code, err = stopped(launch(script, run, 6, "--resume", inject=IN_START_UP, signum=signal.SIGINT))
    assert (code, err) == (130, ["stopped: interrupted (Ctrl-C); what the last checkpoint saved is kept (continue with --resume)."])
    assert (run / "metrics.jsonl").read_text() == before

    code, err = stopped(launch(script, run, 6, "--resume", inject=MID_SAVE[script]))
    epoch = len(losses(run))  # 2, or later where Orbax's thread signalled after the loop looked (the next call trained on)
    assert code == 143 and 2 <= epoch < 6, err
    assert err[-1] == f"stopped: terminated (SIGTERM); checkpoint of epoch {epoch} saved in {run / 'checkpoints'}; continue with --resume."

    assert train(script, run, 6, *EVERY, "--resume") == 0
    assert_same_run(script, run, uninterrupted)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_in_start_up_is_one_line_and_no_resume_advice_before_the_run_exists(signum, tmp_path):
    # Sent once the run names its workdir (IN_START_UP), not after a fixed sleep that could beat the handlers' install.
    code, err = stopped(launch("train_jax", tmp_path / "run", 2, inject=IN_START_UP, signum=signum))
    assert code == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    assert len(err) == 1 and err[0].startswith("stopped: ") and "--resume" not in err[0], err
    assert not (tmp_path / "run" / "config.json").exists()


def test_evaluate_does_not_swallow_ctrl_c(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, ROOT / "scripts" / "evaluate.py", "--real", "--n", "10000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    code, err = stopped(proc, timeout=60)
    assert (code, err) == (130, ["stopped: interrupted (Ctrl-C); nothing was written."])
