#!/usr/bin/env bash
# Dev-only: the 8-stage pipeline's wall-clock speed, link off, alternated in one run (noise
# hits all three): `mpirun -np 8 protomodel train` (1 thread per rank), the single-process
# engine on the same model and tokens per step (`bench-engine`, 2 threads), and
# torch.distributed.pipelining (Schedule1F1B, gloo, 1 thread per stage). Prints the medians,
# the ratios (of the medians, and within each round) and the peak resident memory per rank.
# Needs: pip install "torch==2.13.0+cpu"; data/kjv (scripts/setup.sh).
# precision bf16: protomodel with --matmul bf16 (AMX), PyTorch stages under CPU autocast to bf16.
# Usage: tools/reference/bench_pipeline.sh [rounds] [fp32|bf16]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}; precision=${2:-fp32}
case "$precision" in
  fp32) pm_flags=(); pt_flags=() ;;
  bf16) pm_flags=(--matmul bf16); pt_flags=(--bf16) ;;
  *) echo "precision must be fp32 or bf16, not '$precision'" >&2; exit 2 ;;
esac
source scripts/env.sh
swift build -c release --product protomodel >/dev/null
# d=256 L=8 NH=8 T=256 V=1024 (the `medium` preset), 8 micro-batches of 4 rows = 8,192 tokens/step.
model=(--d-model 256 --n-layer 8 --n-head 8 --seq-len 256 --vocab-size 1024)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pp=(); single=(); torch=()
for r in $(seq "$rounds"); do
  mpirun --oversubscribe -np 8 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE .build/release/protomodel train \
    "${model[@]}" --batch-size 4 --microbatches 8 --steps 15 --warmup 1 --eval-every 0 --eval-batches 1 \
    --out "$tmp/run$r" --log "$tmp/run$r.jsonl" "${pm_flags[@]}" >/dev/null
  pp+=("$tmp/run$r.jsonl")
  single+=("$(.build/release/protomodel bench-engine "${model[@]}" --batch-size 32 --steps 6 --warmup 2 --threads 2 "${pm_flags[@]}" --json)")
  torch+=("$( (cd tools/reference && OPENBLAS_CORETYPE= python3 bench_pipeline_torch.py "${model[@]}" --steps 12 --warmup 3 "${pt_flags[@]}") 2>/dev/null)")
done
python3 - "$rounds" "$precision" "${pp[@]}" "${single[@]}" "${torch[@]}" <<'PY'
import json, statistics, sys
n, precision = int(sys.argv[1]), sys.argv[2]; a = sys.argv[3:]
pp_files, single, torch = a[:n], [json.loads(x) for x in a[n:2 * n]], [json.loads(x) for x in a[2 * n:]]
pp, pp_rss = [], None
for f in pp_files:
    recs = [json.loads(l) for l in open(f)]
    steps = [r["step_time_s"] for r in recs if r.get("type") == "step"][3:]  # after 3 warm-up steps
    pp.append(8192 / statistics.median(steps))
    pp_rss = next(r["peak_rss_mb"] for r in recs if r.get("type") == "summary")
med = statistics.median
p, s, t = med(pp), med(r["tokens_per_s"] for r in single), med(r["tokens_per_s"] for r in torch)
print(f"model d=256 L=8 NH=8 T=256 V=1024, 8 micro-batches x 4 rows = 8192 tokens/step, link off, precision {precision}, {n} rounds, medians")
print(f"protomodel 8-rank pipeline   {p:7.0f} tokens/s   rounds: {', '.join(f'{x:.0f}' for x in pp)}")
print(f"protomodel single process    {s:7.0f} tokens/s   (2 threads, B=32)   rounds: {', '.join('%.0f' % r['tokens_per_s'] for r in single)}")
print(f"torch.distributed.pipelining {t:7.0f} tokens/s   rounds: {', '.join('%.0f' % r['tokens_per_s'] for r in torch)}")
# Within a round the three runs are back to back, so the machine's drift cancels in their ratios.
ps = [x / r["tokens_per_s"] for x, r in zip(pp, single)]
pt = [x / r["tokens_per_s"] for x, r in zip(pp, torch)]
print(f"pipeline / single process    {p / s:.3f} of the medians; per round {', '.join('%.2f' % x for x in ps)}, median {med(ps):.2f}   (target >= 0.95)")
print(f"pipeline / torch pipelining  {p / t:.2f}x of the medians; per round {', '.join('%.2f' % x for x in pt)}, median {med(pt):.2f}x  (target >= 1.5x)")
print("peak RSS per rank, MiB: protomodel " + ", ".join(f"{x:.0f}" for x in pp_rss)
      + " | torch " + ", ".join(f"{x:.0f}" for x in torch[-1]["peak_rss_mb"]))
PY
