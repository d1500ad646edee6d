#!/usr/bin/env bash
# Dev-only: protomodel bench-engine and the identical PyTorch eager model, same config and
# threads, alternated in one run (noise hits both); prints the tokens/s ratio.
# Needs: pip install "torch==2.13.0+cpu". Usage: tools/reference/bench_side_by_side.sh [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${1:-2}; rounds=${2:-2}
source scripts/env.sh
swift build -c release --product protomodel >/dev/null
cfg=(--d-model 256 --n-layer 4 --n-head 4 --seq-len 256 --vocab-size 256 --batch-size 8 --steps 20 --warmup 3)
pm=(); pt=()
for r in $(seq "$rounds"); do
  pm+=("$(.build/release/protomodel bench-engine --preset engine "${cfg[@]}" --threads "$threads" --json)")
  pt+=("$(OPENBLAS_CORETYPE= python3 tools/reference/bench_torch.py "${cfg[@]}" --threads "$threads" --sdpa)")
done
python3 - "$threads" "${pm[@]}" "${pt[@]}" <<'PY'
import json, sys
t = sys.argv[1]; rows = [json.loads(a) for a in sys.argv[2:]]
n = len(rows) // 2
pm, pt = rows[:n], rows[n:]
best = lambda rs: max(r["tokens_per_s"] for r in rs)
print(f"threads={t}  rounds={n}  config d=256 L=4 NH=4 T=256 V=256 B=8")
print(f"protomodel  {best(pm):8.0f} tokens/s  ({pm[0]['gflops']:.0f} GFLOP/s, sgemm {pm[0]['sgemm_gflops']:.0f} GFLOP/s)")
print(f"{pt[0]['engine']:<11} {best(pt):8.0f} tokens/s")
print(f"ratio       {best(pm)/best(pt):.2f}x  (target >= 1.3x)")
PY
