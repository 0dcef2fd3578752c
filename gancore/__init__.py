"""gancore: the framework-neutral core of a GAN run that jaxgan and torch_baseline share.

Settings and `Config` (`gancore.settings`, `gancore.config`, the named recipes in `gancore/recipes/`),
the data (`gancore.data`, `gancore.sources`), the training loop (`gancore.loop`, `gancore.framework`,
`gancore.resume`, `gancore.background`), run folders (`gancore.runs`, `gancore.files`, `gancore.stops`),
reports (`gancore.reporting`, `gancore.summaries`, `gancore.longrun`, `gancore.flops`).

It imports neither JAX nor torch (tests/test_layers.py keeps it so); this `__init__` imports nothing.
"""
