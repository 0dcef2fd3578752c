"""Code that needs both frameworks: jaxgan and torch_baseline side by side.

- `sidebyside.lockstep`: both frameworks' step replayed in lock-step, and how close they must stay.
- `sidebyside.compare`: both trainers from the same weights, one report (scripts/compare.py).
- `sidebyside.samples`: samples of a run of either framework, from its final generator or its newest intact checkpoint.
- `sidebyside.benchmark`: scripts/bench.py's rows, jaxgan's and torch_baseline's, timed in one process.
- `sidebyside.groups`: the long-horizon check's groups of runs, trained with either framework or read (scripts/long_horizon.py).

jaxgan never imports torch and torch_baseline never imports JAX; what needs both lives here.
"""
