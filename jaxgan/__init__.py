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
This package's `__init__` imports nothing, so importing one module loads only what that module needs.
"""
