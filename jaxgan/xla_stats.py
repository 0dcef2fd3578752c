"""What XLA says about a compiled program: its cost analysis and the kernels of its optimised HLO.

Pure functions over a `jax.stages.Compiled` (or its `as_text()`), for scripts/bench.py:

- `cost(compiled)`: XLA's FLOPs, bytes accessed and transcendentals of one call.
- `hlo_ops(text)`: fusions and kernels (operations that do work: not parameters,
  tuples, constants, bitcasts or control flow) in the program, statically and per
  iteration of its main loop, nested loops counted by their known trip counts.
- `per_step_cost(compiled, steps)`: `cost` of an epoch that scans `steps` steps, per step.
"""

from __future__ import annotations

import functools
import re

# Operations that launch no work of their own (control flow is counted through its bodies).
_FREE = frozenset(
    {
        "parameter",
        "constant",
        "get-tuple-element",
        "tuple",
        "bitcast",
        "after-all",
        "opt-barrier",
        "partition-id",
        "replica-id",
        "while",
        "conditional",
        "call",
    }
)
_COMPUTATION = re.compile(r"^(ENTRY )?%([\w.\-]+) .*\{$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%[\w.\-]+ = (.*)$")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')


def cost(compiled) -> dict:
    """XLA's cost analysis of one call of `compiled`: flops, bytes_accessed, transcendentals."""
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis  # a list of one in older jax
    return {
        "flops": float(analysis.get("flops", 0.0)),
        "bytes_accessed": float(analysis.get("bytes accessed", 0.0)),
        "transcendentals": float(analysis.get("transcendentals", 0.0)),
    }


def _opcode(rest: str) -> str:
    """The opcode of an instruction's right-hand side `SHAPE opcode(operands), attributes`."""
    if rest.startswith("("):  # a tuple shape: skip to its closing parenthesis
        depth = 0
        for i, ch in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0:
                rest = rest[i + 1 :]
                break
    else:
        rest = rest.split(" ", 1)[1]
    return rest.strip().split("(", 1)[0]


def _parse(text: str) -> tuple[str, dict[str, list[tuple[str, str]]]]:
    """(entry name, {computation: [(opcode, line)]}) of an HLO module's text."""
    computations: dict[str, list[tuple[str, str]]] = {}
    entry, current = None, None
    for line in text.splitlines():
        header = _COMPUTATION.match(line)
        if header:
            current = computations.setdefault(header.group(2), [])
            entry = header.group(2) if header.group(1) else entry
            continue
        instruction = _INSTRUCTION.match(line)
        if instruction and current is not None:
            current.append((_opcode(instruction.group(1)), line))
    if entry is None:
        raise ValueError("not the text of an HLO module: no ENTRY computation found")
    return entry, computations


def _callees(opcode: str, line: str) -> list[str]:
    """Computations that control flow runs (a fusion's body is part of the fusion's kernel)."""
    if opcode == "while":
        return re.findall(r"(?:condition|body)=%([\w.\-]+)", line)
    if opcode == "conditional":
        return re.findall(r"%([\w.\-]+)", line.split("branch_computations=", 1)[-1].split("}", 1)[0]) + re.findall(
            r"(?:true|false)_computation=%([\w.\-]+)", line
        )
    if opcode == "call":
        return re.findall(r"to_apply=%([\w.\-]+)", line)
    return []


def _count(name: str, computations: dict, cache: dict) -> tuple[int, int, int, int]:
    """(static fusions, static kernels, launched fusions, launched kernels) of one computation."""
    if name in cache:
        return cache[name]
    sf = sk = df = dk = 0
    for opcode, line in computations[name]:
        callees = _callees(opcode, line)
        trips = int(_TRIP.search(line).group(1)) if opcode == "while" and _TRIP.search(line) else 1
        for callee in callees:
            f, k, lf, lk = _count(callee, computations, cache)
            sf, sk, df, dk = sf + f, sk + k, df + trips * lf, dk + trips * lk
        if opcode not in _FREE:
            sk, dk = sk + 1, dk + 1
            if opcode == "fusion":
                sf, df = sf + 1, df + 1
    cache[name] = (sf, sk, df, dk)
    return cache[name]


def hlo_ops(text: str) -> dict:
    """Fusions and kernels in an optimised HLO module's text (`compiled.as_text()`).

    `fusions`, `kernels`: how many the program holds. `step_fusions`, `step_kernels`:
    how many one iteration of the entry's heaviest while loop (a scanned epoch's
    step) launches, nested loops counted times their trip count; without such a
    loop, how many one call launches.
    """
    entry, computations = _parse(text)
    cache: dict = {}
    fusions, kernels, call_fusions, call_kernels = _count(entry, computations, cache)
    loops = [_callees(op, line) for op, line in computations[entry] if op == "while"]
    per_iteration = [tuple(map(sum, zip(*(cache[c][2:] for c in loop)))) for loop in loops]
    step = max(per_iteration, key=lambda fk: fk[1], default=(call_fusions, call_kernels))
    return {"fusions": fusions, "kernels": kernels, "step_fusions": step[0], "step_kernels": step[1]}


@functools.cache
def _loops_counted_by_trips(platform: str) -> bool:
    """Whether this backend's cost analysis multiplies a while loop's body by its trip count."""
    import jax
    import jax.numpy as jnp

    def flops(trips: int) -> float:
        loop = jax.jit(lambda a: jax.lax.fori_loop(0, trips, lambda i, x: jnp.tanh(x @ x), a))
        x = jax.device_put(jnp.ones((8, 8)), jax.devices(platform)[0])
        return cost(loop.lower(x).compile())["flops"]

    return flops(6) > 1.5 * flops(3)


def per_step_cost(compiled, steps: int) -> dict:
    """`cost` of a compiled epoch that scans `steps` steps, per step.

    XLA's cost analysis counts a while loop's body once on some backends and times
    its trip count on others (asked of this one with a tiny loop), and counts every
    step of a loop that the compiler unrolled; either way the result is one step
    plus its share of the epoch's shuffle.
    """
    import jax

    epoch = cost(compiled)
    entry, computations = _parse(compiled.as_text())
    looped = any(op == "while" for op, _ in computations[entry])
    if looped and not _loops_counted_by_trips(jax.devices()[0].platform):
        return epoch
    return {k: v / steps for k, v in epoch.items()}
