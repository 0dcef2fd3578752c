"""The PyTorch rows of scripts/bench.py: the article's step timed in eager PyTorch, torch.compile,
CUDA graphs, bfloat16 autocast, and the article's per-image DataLoader.

torch itself is imported inside the functions, so scripts/bench.py --compile-only never loads it.
"""

from __future__ import annotations

import time

import numpy as np

from jaxgan.config import Config

# name in --torch: (row name, precision of its products, torch.compile mode or None)
TORCH_ROWS = {
    "eager": ("torch eager", "float32", None),
    "compile": ("torch compile", "float32", "default"),
    "cudagraphs": ("torch reduce-overhead (CUDA graphs)", "float32", "reduce-overhead"),
    "eager-bf16": ("torch eager bf16 autocast", "bfloat16", None),
    "compile-bf16": ("torch compile bf16 autocast", "bfloat16", "default"),
    "article": ("torch article loader", "float32", None),
}


def torch_modules(G, D, mode: str | None, bf16: bool, device: str):
    """G and D as the row runs them: autocast to bfloat16 products (outputs back in float32,
    so BCE and Adam stay float32), compiled with torch.compile in `mode`."""
    import torch

    def autocast(module):
        def forward(x):
            with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
                return module(x).float()
        return forward

    G, D = (autocast(G), autocast(D)) if bf16 else (G, D)
    return (torch.compile(G, mode=mode), torch.compile(D, mode=mode)) if mode else (G, D)


def bench_torch(images_NxD: np.ndarray, batch_size: int, steps: int, row: str, precision: str, device: str) -> dict:
    import torch

    from torch_baseline import train as tb

    name, dtype, mode = TORCH_ROWS[row]
    if mode == "reduce-overhead" and not device.startswith("cuda"):
        return {"row": name, "precision": dtype, "skipped": f"needs CUDA (CUDA graphs replay GPU kernels); torch runs on {device} here"}
    torch.backends.cuda.matmul.allow_tf32 = precision == "default"
    torch.manual_seed(0)
    config = Config(batch_size=batch_size)
    G, D, g_optim, d_optim = tb.build(config, images_NxD.shape[1], device)
    G, D = torch_modules(G, D, mode, dtype == "bfloat16", device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    mark_step = torch.compiler.cudagraph_mark_step_begin if mode == "reduce-overhead" else (lambda: None)
    shuffle = torch.Generator().manual_seed(0)
    if row == "article":
        batches = lambda: tb.article_batches(tb.ArticleDataset(images_NxD.reshape(-1, 28, 28), np.zeros(len(images_NxD))), batch_size, shuffle, device)  # noqa: E731
    else:
        on_device = torch.from_numpy(images_NxD).to(device)
        batches = lambda: tb.device_batches(on_device, batch_size, shuffle)  # noqa: E731

    def run(n: int) -> tuple[int, float]:
        done, last = 0, None
        while done < n:
            for x in batches():
                mark_step()  # CUDA graphs: a new step may overwrite the last one's outputs
                z_d = torch.randn(len(x), config.latent_dim, device=device)
                z_g = torch.randn(len(x), config.latent_dim, device=device)
                last = tb.train_step(G, D, g_optim, d_optim, x, z_d, z_g)["d_loss"]
                done += 1
                if done == n:
                    break
        sync()
        return done, float(last)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run(3)  # warm-up: compilation, and CUDA graphs record on a later call than the first
    compile_s = time.perf_counter() - start if mode else None
    start, (done, last) = time.perf_counter(), run(steps)
    peak = torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else None
    return {"row": name, "precision": dtype, "steps": done, "seconds": time.perf_counter() - start, "compile_s": compile_s,
            "peak_mem_gb": peak, "final_d_loss": last}
