#!/usr/bin/env bash
# Dev-only: protomodel bench-engine and the identical PyTorch eager model (SDPA attention),
# same config and threads, alternated in one run (noise hits both), on the engine config
# (d=256 L=4 NH=4 T=256 V=256 B=8) and the default `small` model (d=128 L=8 NH=4 T=128 V=1024,
# B=32: one training step's 4,096 tokens); prints the medians and their ratio, and the ratio
# within each round (the two runs of a round are back to back, so the machine's drift cancels).
# precision fp32 (default): both in fp32. bf16: protomodel --matmul bf16 (AMX) against PyTorch
# under torch.autocast("cpu", bfloat16), the like-for-like mixed-precision pair.
# Needs: pip install "torch==2.13.0+cpu". Usage: tools/reference/bench_side_by_side.sh [threads] [rounds] [fp32|bf16]
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${1:-2}; rounds=${2:-3}; precision=${3:-fp32}
case "$precision" in
  fp32) pm_flags=(); pt_flags=() ;;
  bf16) pm_flags=(--matmul bf16); pt_flags=(--bf16) ;;
  *) echo "precision must be fp32 or bf16, not '$precision'" >&2; exit 2 ;;
esac
source scripts/env.sh
swift build -c release --product protomodel >/dev/null
engine=(--d-model 256 --n-layer 4 --n-head 4 --seq-len 256 --vocab-size 256 --batch-size 8 --steps 20 --warmup 3)
small=(--d-model 128 --n-layer 8 --n-head 4 --seq-len 128 --vocab-size 1024 --batch-size 32 --steps 20 --warmup 3)
out=()
for r in $(seq "$rounds"); do
  for name in engine small; do
    declare -n cfg=$name
    out+=("$name" "$(.build/release/protomodel bench-engine "${cfg[@]}" --threads "$threads" "${pm_flags[@]}" --json)")
    out+=("$name" "$(OPENBLAS_CORETYPE= python3 tools/reference/bench_torch.py "${cfg[@]}" --threads "$threads" --sdpa "${pt_flags[@]}")")
  done
done
python3 - "$threads" "$precision" "${out[@]}" <<'PY'
import json, statistics, sys
t, precision = sys.argv[1], sys.argv[2]; a = sys.argv[3:]
rows = [(a[i], json.loads(a[i + 1])) for i in range(0, len(a), 2)]
print(f"threads={t}, precision {precision}, medians of {len(rows) // 4} alternating rounds")
for name, desc in [("engine", "d=256 L=4 NH=4 T=256 V=256 B=8"), ("small", "d=128 L=8 NH=4 T=128 V=1024 B=32")]:
    pm = [r for n, r in rows if n == name and r["engine"] == "protomodel"]
    pt = [r for n, r in rows if n == name and r["engine"] != "protomodel"]
    m = lambda rs: statistics.median(r["tokens_per_s"] for r in rs)
    fl = statistics.median(r["gflops"] for r in pm); sg = statistics.median(r["sgemm_gflops"] for r in pm)
    print(f"{name:6} ({desc})")
    print(f"  protomodel  {m(pm):8.0f} tokens/s  rounds {', '.join('%.0f' % r['tokens_per_s'] for r in pm)}"
          f"  ({fl:.0f} GFLOP/s = {100 * fl / sg:.0f}% of this run's sgemm {sg:.0f}; attention {pm[0]['attention']})")
    print(f"  {pt[0]['engine']:<11} {m(pt):8.0f} tokens/s  rounds {', '.join('%.0f' % r['tokens_per_s'] for r in pt)}")
    pairs = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(pm, pt)]  # same round: drift cancels
    print(f"  ratio       {m(pm) / m(pt):.2f}x of the medians; per round {', '.join('%.2f' % x for x in pairs)}, "
          f"median {statistics.median(pairs):.2f}x  (target >= 1.5x)")
PY
