"""jaxgan: the vanilla GAN of "GANs from Scratch" in pure-functional JAX/Flax.

What a prototype imports (each module documents itself):

- `jaxgan.models`: the article's `Generator`/`Discriminator` (MLP) and `DCGenerator`/`DCDiscriminator`.
- `jaxgan.losses`: pure D and G losses on D's logits (BCE, least squares, hinge, Wasserstein)
  and the WGAN-GP `gradient_penalty`.
- `jaxgan.gan`: `GAN`, what is trained (networks, losses, optimisers: pass your own).
- `jaxgan.nnx`: `from_nnx`, a Flax NNX module class as a network `GAN` takes; `to_nnx`, the trained module.
- `jaxgan.step`: `TrainState`, `create_train_state`, `train_step`, `update` (the step on given noise), `generate`.
- `jaxgan.epochs`: `run(state, images, batch_size)`, one epoch as one compiled call;
  `compile(mesh, batch_size, per_step)`, the same on a device mesh.
- `jaxgan.build`: `make_gan(config)`, the GAN a `Config` describes; `gan_of_run(config.json)`.
- `jaxgan.fit`: `fit(config, gan=...)`, the loop with metrics, sample grids, checkpoints,
  TensorBoard and evaluation; `load_final_params(workdir)`.
- `jaxgan.evaluate`: `generate_jax`, `evaluate_samples` (FID, precision/recall, modes, class accuracy).

What both trainers share (`gancore.config.Config` and `Config.from_recipe(name)`, the data, the loop,
run folders, reports) is the package `gancore`, which imports neither JAX nor torch; `torch_baseline` imports only that.
This package's `__init__` imports nothing of the package, so importing one module loads only what that module needs;
it only turns the old spelling of a moved module (`jaxgan.config`, `python -m jaxgan.data`) into one sentence naming the new one.
"""

import sys
from importlib.abc import MetaPathFinder

# The modules that moved to gancore (what both trainers share), by their names in jaxgan before.
_MOVED = (
    "background",
    "config",
    "data",
    "files",
    "flops",
    "framework",
    "longrun",
    "loop",
    "recipes",
    "reporting",
    "resume",
    "runs",
    "settings",
    "sources",
    "stops",
    "summaries",
)


def _moved(name: str) -> ModuleNotFoundError:
    module = name.removeprefix("jaxgan.")
    return ModuleNotFoundError(
        f"jaxgan.{module} is now gancore.{module} (what jaxgan and torch_baseline share moved to the package gancore); use that name.", name=name
    )


class _MovedToGancore(MetaPathFinder):
    """Last on sys.meta_path: asked only for a module no other finder found (`import jaxgan.config`, `python -m jaxgan.data`)."""

    def find_spec(self, name, path=None, target=None):
        package, _, rest = name.partition(".")
        if package == "jaxgan" and rest.split(".")[0] in _MOVED:
            raise _moved(name)
        return None


def __getattr__(name: str):
    """`from jaxgan import config`: the same sentence."""
    if name in _MOVED:
        raise _moved(name)
    raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")


if not any(isinstance(f, _MovedToGancore) for f in sys.meta_path):
    sys.meta_path.append(_MovedToGancore())
