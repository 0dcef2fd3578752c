"""The settings each trainer passes to its fit beside `gancore.config.Config` (its dtype, random
numbers, devices...), declared once as `gancore.settings.Setting`s: config.json records them beside
Config's fields. Pure Python: torch_baseline imports it without pulling in JAX.
"""

from __future__ import annotations

from gancore.settings import JAX, TORCH, Setting

PRNG_IMPLS = ("threefry2x32", "philox4x32", "rbg", "unsafe_rbg")
DENSE = ("xla", "pallas")  # how the MLPs' hidden layers run (jaxgan.models, jaxgan.pallas_dense)
# "dtype", "prng" and "loader" define a run ("dense" does not: a resume may switch it).
FRAMEWORK_SETTINGS = (
    Setting(
        "dtype",
        "float32",
        "--dtype",
        "matrix-product dtype; params and Adam state stay float32",
        str,
        choices=("float32", "bfloat16"),
        trainers=(JAX,),
        run=True,
    ),
    Setting(
        "prng",
        "threefry2x32",
        "--prng",
        "JAX random-number implementation for noise, dropout and shuffling",
        str,
        choices=PRNG_IMPLS,
        trainers=(JAX,),
        run=True,
    ),
    Setting(
        "dense",
        "xla",
        "--dense",
        "the MLPs' hidden layers: xla (XLA's fusions) or pallas (dense, bias, LeakyReLU and dropout as one Pallas "
        "kernel each; the same maths and params; interpret mode on a CPU, slow)",
        str,
        choices=DENSE,
        trainers=(JAX,),
    ),
    Setting("devices", None, "--devices", "train on the first N devices of this process (default: every device of every process)", int, trainers=(JAX,)),
    Setting(
        "coordinator_address",
        None,
        "--coordinator-address",
        "host:port of process 0, for a run of several processes",
        str,
        trainers=(JAX,),
        env="JAX_COORDINATOR_ADDRESS",
    ),
    Setting("num_processes", None, "--num-processes", "how many processes take part, one per host", int, trainers=(JAX,), env="JAX_NUM_PROCESSES"),
    Setting(
        "process_id",
        None,
        "--process-id",
        "this process's rank, 0 to --num-processes - 1; process 0 writes the files",
        int,
        trainers=(JAX,),
        env="JAX_PROCESS_ID",
    ),
    Setting(
        "no_compile_cache",
        False,
        "--no-compile-cache",
        "compile without JAX's persistent compilation cache (on by default, in $JAXGAN_CACHE_DIR or "
        "~/.cache/jaxgan/xla: a rerun loads its programs instead of compiling them; JAXGAN_NO_CACHE=1 does the same)",
        None,
        trainers=(JAX,),
    ),
    Setting("device", None, "--device", "torch device, e.g. cpu or cuda (default: cuda if available)", str, trainers=(TORCH,)),
    Setting(
        "loader",
        "article",
        "--loader",
        "article: its per-image transform through a DataLoader; device: data resident on the device",
        str,
        choices=("article", "device"),
        trainers=(TORCH,),
        run=True,
    ),
)
