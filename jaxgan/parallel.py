"""Data parallelism with `jax.sharding`: one code path from one device to many hosts.

A `Mesh` with one axis, `data`, over the devices; every global batch is split
along it and the train state is replicated, so each step is the one-device step
with XLA's all-reduce of the gradients: the same global batch and keys give the
same numbers up to the order of float sums. One device is a mesh of one.

The uint8 images are replicated on every device (MNIST: 47 MB) and each device
gathers its own rows of each shuffled batch: no image crosses a device or a host
during training. With several processes (`initialize`), each one puts the same
images on its own devices and trains its devices' rows of every global batch.
The epoch compiled for a mesh is `jaxgan.epochs.compile`.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gancore.config import ConfigError

DATA = "data"


def initialize(coordinator_address: str | None, num_processes: int | None, process_id: int | None) -> bool:
    """Joins a multi-process run when any setting is given; returns whether it did.

    Call it before anything runs on a device. On CPUs the processes talk through gloo.
    """
    settings = {"--coordinator-address": coordinator_address, "--num-processes": num_processes, "--process-id": process_id}
    if all(v is None for v in settings.values()):
        return False
    missing = [flag for flag, v in settings.items() if v is None]
    if missing:
        raise ConfigError(f"a multi-process run needs {', '.join(settings)} together; {', '.join(missing)} is missing.")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id must be in [0, --num-processes={num_processes}), got {process_id}.")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True


def is_main_process() -> bool:
    """Process 0 writes the files of a run; every process trains."""
    return jax.process_index() == 0


def data_mesh(batch_size: int, num_devices: int | None = None) -> Mesh:
    """A one-axis `data` mesh over `num_devices` devices (all of them when None).

    Raises ConfigError when the devices are not there or the batch does not split evenly.
    """
    available = jax.device_count()
    if num_devices is None:
        num_devices = available
    elif jax.process_count() > 1 and num_devices != available:
        raise ConfigError(
            f"--devices {num_devices} does not fit a run of {jax.process_count()} processes with {available} devices "
            f"in all; leave --devices out to use every device."
        )
    elif not 1 <= num_devices <= available:
        raise ConfigError(
            f"--devices {num_devices} does not fit this machine, which has {available} {jax.default_backend()} device(s); choose from 1 to {available}."
        )
    if batch_size % num_devices:
        lower = batch_size // num_devices * num_devices
        choices = " or ".join(str(b) for b in (lower, lower + num_devices) if b > 0)
        raise ConfigError(f"--batch-size {batch_size} does not split evenly over {num_devices} devices; choose a multiple of {num_devices} such as {choices}.")
    return jax.make_mesh((num_devices,), (DATA,), axis_types=(AxisType.Auto,), devices=jax.devices()[:num_devices])


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def put_replicated(tree, mesh: Mesh):
    """The same values, held whole by every device of the mesh (each process passes identical values).

    PRNG keys travel as their key data and are wrapped again on the mesh.
    """
    sharding = replicated(mesh)

    def put(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.make_array_from_process_local_data(sharding, np.asarray(jax.random.key_data(x)))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(put, tree)


def share_refusal(message: str | None) -> str | None:
    """Process 0's refusal (or None) in every process, so that all stop together instead
    of the others waiting for process 0 at the next barrier."""
    if jax.process_count() == 1:
        return message
    from jax.experimental import multihost_utils

    encoded = (message or "").encode()[:2047]
    buffer = np.zeros(2048, np.uint8)
    buffer[: len(encoded)] = np.frombuffer(encoded, np.uint8)
    shared = np.asarray(multihost_utils.broadcast_one_to_all(buffer)).astype(np.uint8)
    text = shared.tobytes().rstrip(b"\0").decode(errors="replace")
    return text or None


def wait_for_all(name: str) -> None:
    """A barrier across processes (nothing to wait for in a one-process run)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
