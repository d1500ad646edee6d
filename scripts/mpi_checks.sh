#!/usr/bin/env bash
# Multi-rank checks under real mpirun (XCTest runs on one rank): the N-rank pipeline must
# log the same per-step losses as one process, bad input must fail fast on every rank.
# Needs the release build and data/kjv (scripts/test.sh provides both).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
BIN=.build/release/protomodel
OUT=runs/mpi-checks
rm -rf "$OUT"; mkdir -p "$OUT"
fail=0
run() {  # np, name, train flags...  (PM_ENV="VAR=value" passes one more variable to the ranks)
  local np=$1 name=$2; shift 2
  local extra=(); [ -n "${PM_ENV:-}" ] && extra=(-x "$PM_ENV")
  timeout 600 mpirun --oversubscribe -np "$np" -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE "${extra[@]}" \
    $BIN train --data data/kjv --eval-every 0 --eval-batches 4 --out "$OUT/$name" --log "$OUT/$name.jsonl" "$@" \
    > "$OUT/$name.out" 2>&1 || { echo "mpi-checks: $name (np=$np) exited non-zero:" >&2; cat "$OUT/$name.out" >&2; fail=1; }
}
# Per-step losses in step order; when a step was logged twice (a run that was killed and
# resumed), the later record wins.
losses() { field "$1" loss; }
field() {  # file, key: that key's value per step (steps without it are left out)
  grep '"type":"step"' "$1" | awk -v key="\"$2\":" '
    { s = index($0, "\"step\":"); i = index($0, key); if (!s || !i) next
      step = substr($0, s + 7) + 0; val = substr($0, i + length(key)); sub(/[,}].*/, "", val)
      v[step] = val; if (step > n) n = step }
    END { for (i = 1; i <= n; i++) if (i in v) print v[i] }'
}
same_losses() {  # name-a, name-b [key [tol]]: equal per-step values of key (default loss; relative difference <= tol, default 1e-5)
  local a b key=${3:-loss} tol=${4:-1e-5}
  a=$(field "$OUT/$1.jsonl" "$key" 2>/dev/null || true); b=$(field "$OUT/$2.jsonl" "$key" 2>/dev/null || true)
  if [ -z "$a" ] || [ "$(echo "$a" | wc -l)" != "$(echo "$b" | wc -l)" ]; then
    echo "mpi-checks: FAIL $1 vs $2: different step counts for $key" >&2; fail=1; return
  fi
  if paste <(echo "$a") <(echo "$b") | awk -v tol="$tol" '{ d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1;
        if (d > tol * m) { print "step " NR ": " $1 " vs " $2; bad = 1 } } END { exit bad }' >&2; then
    echo "mpi-checks: ok   $1 = $2 ($key, $(echo "$a" | wc -l) steps, last $(echo "$a" | tail -1))"
  else
    echo "mpi-checks: FAIL $1 vs $2: $key differs" >&2; fail=1
  fi
}
expect_error() {  # name, expected text, np, train flags...: must exit non-zero within 60 s, naming the problem
  local name=$1 text=$2 np=$3; shift 3
  local t0=$SECONDS rc=0
  timeout 60 mpirun --oversubscribe -np "$np" -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE \
    $BIN train --data data/kjv --out "$OUT/$name" "$@" > "$OUT/$name.out" 2>&1 || rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q -- "$text" "$OUT/$name.out"; then
    echo "mpi-checks: ok   $name: exit $rc in $((SECONDS - t0)) s: $(grep -m1 -- "$text" "$OUT/$name.out")"
  else
    echo "mpi-checks: FAIL $name: exit $rc (124 = hung), expected an error containing '$text':" >&2
    cat "$OUT/$name.out" >&2; fail=1
  fi
}

common=(--preset small --steps 6 --batch-size 2 --microbatches 4)
run 1 np1 "${common[@]}"
run 4 np4-1f1b "${common[@]}" --schedule 1f1b
run 4 np4-gpipe "${common[@]}" --schedule gpipe
run 3 np3-uneven "${common[@]}" --split 4,1,3
same_losses np1 np4-1f1b
same_losses np1 np4-gpipe
same_losses np1 np3-uneven
# Boundary messages larger than the MPI message limit travel in pieces (by default 60 KiB,
# under TCP's eager limit; here also 4 KiB pieces of the 128 KiB activations, and whole
# messages up to MPI's 32-bit count): same losses.
PM_ENV=PROTOMODEL_MAX_MESSAGE_BYTES=4096 run 4 np4-pieces "${common[@]}"
same_losses np4-1f1b np4-pieces
PM_ENV=PROTOMODEL_MAX_MESSAGE_BYTES=2147483647 run 4 np4-whole "${common[@]}"
same_losses np4-1f1b np4-whole

# bf16 products on each kernel this CPU runs: two stages give the one-process losses, and the
# run log names the kernel.
for k in amx avx512-bf16; do
  rc=0; msg=$($BIN bench-engine --preset tiny --steps 1 --warmup 0 --matmul bf16 --bf16-kernel $k 2>&1) || rc=$?
  if [ $rc -ne 0 ]; then  # only the refusal counts as a skip: a crash or any other error fails
    if [ $rc -eq 1 ] && echo "$msg" | grep -q "does not run it\|has neither"; then echo "mpi-checks: skip bf16-$k: this CPU does not run it"
    else echo "mpi-checks: FAIL bf16-$k probe: exit $rc: $msg" >&2; fail=1; fi
    continue
  fi
  run 1 bf16-$k-np1 "${common[@]}" --matmul bf16 --bf16-kernel $k
  run 2 bf16-$k-np2 "${common[@]}" --matmul bf16 --bf16-kernel $k
  same_losses bf16-$k-np1 bf16-$k-np2
  label=$([ $k = amx ] && echo AMX || echo AVX512-BF16)
  grep -q "\"matmul\":\"bf16 on $label\"" "$OUT/bf16-$k-np2.jsonl" && echo "mpi-checks: ok   bf16-$k: the run log names bf16 on $label" \
    || { echo "mpi-checks: FAIL bf16-$k: the run log does not name bf16 on $label" >&2; fail=1; }
done

# The same run over TCP: on loopback, and across two network-namespace "hosts" (the
# multi-host launch path: rsh agent, remote daemons, TCP between ranks) — same losses.
run 2 np2-shm "${common[@]}"
PM_ENV=OMPI_MCA_btl=tcp,self run 2 np2-tcp "${common[@]}"
same_losses np2-shm np2-tcp loss 1e-7  # the transport must not change a bit of arithmetic
if scripts/hosts.sh check >/dev/null 2>&1; then
  timeout 300 scripts/hosts.sh run 2 off -- train --data data/kjv --eval-every 0 --eval-batches 4 "${common[@]}" \
    --out "$PWD/$OUT/np2-hosts" --log "$PWD/$OUT/np2-hosts.jsonl" > "$OUT/np2-hosts.out" 2>&1 \
    || { echo "mpi-checks: np2-hosts failed:" >&2; cat "$OUT/np2-hosts.out" >&2; fail=1; }
  same_losses np2-shm np2-hosts loss 1e-7
  ip netns list | grep -q pmh && { echo "mpi-checks: FAIL the test bed left namespaces behind" >&2; fail=1; }
else
  echo "mpi-checks: skip np2-hosts: $(scripts/hosts.sh check 2>&1)"
fi

# Data-parallel replicas: 2 stages × 2 replicas and 2 × 3 compute the 2-stage pipeline's
# losses on the same global batch; 16 ranks run 8 stages × 2 replicas; a checkpoint of one
# replica count refuses another.
rcommon=(--preset small --n-layer 4 --steps 5 --batch-size 2 --microbatches 6 --eval-batches 12)  # 5 steps: the summation order differs, Adam amplifies it
run 2 dp-r1 "${rcommon[@]}"
run 4 dp-r2 "${rcommon[@]}" --stages 2
run 6 dp-r3 "${rcommon[@]}" --stages 2 --schedule gpipe --codec subspace:16
run 2 dp-r1-sub "${rcommon[@]}" --schedule gpipe --codec subspace:16
same_losses dp-r1 dp-r2
same_losses dp-r1 dp-r2 grad_norm
same_losses dp-r1 dp-r2 val_loss
same_losses dp-r1-sub dp-r3
same_losses dp-r1-sub dp-r3 val_loss
run 16 dp-16 --preset small --steps 2 --batch-size 1 --microbatches 2 --stages 8 --checkpoint-every 2
grep -q "8 stages × 2 replicas" "$OUT/dp-16.out" && echo "mpi-checks: ok   mpirun -np 16 --stages 8 trains 8 stages × 2 replicas" \
  || { echo "mpi-checks: FAIL -np 16 --stages 8" >&2; fail=1; }
expect_error dp-resume-other-r "replicas: checkpoint has 2, this run has 1" 8 --preset small --steps 2 --batch-size 1 --microbatches 2 \
  --out "$OUT/dp-16" --resume

# Local SGD (weights averaged every 2 steps and at each checkpoint): a run whose rank 3 dies
# at step 4 resumes from its step-2 checkpoint to the uninterrupted run's losses.
rlocal=(--preset small --n-layer 4 --steps 5 --batch-size 2 --microbatches 6 --stages 2 --replica-sync-every 2 --checkpoint-every 2)
run 4 dp-local "${rlocal[@]}"
timeout 60 mpirun --oversubscribe -np 4 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE $BIN train --data data/kjv \
  --eval-every 0 --eval-batches 4 "${rlocal[@]}" --out "$OUT/dp-local-resume" --log "$OUT/dp-local-resume.jsonl" \
  --debug-fail-at 3:4 > "$OUT/dp-local-killed.out" 2>&1 && { echo "mpi-checks: FAIL dp-local: the injected failure did not stop the run" >&2; fail=1; }
run 4 dp-local-resume "${rlocal[@]}" --resume
same_losses dp-local dp-local-resume

# Compressed pipeline = one process of the same subspace model, both ways of keeping the constraint.
run 1 sub-np1 "${common[@]}" --codec subspace --rank-k 16
run 4 sub-np4 "${common[@]}" --codec subspace --rank-k 16
same_losses sub-np1 sub-np4
run 1 subp-np1 "${common[@]}" --codec subspace --rank-k 16 --subspace-mode projected
run 4 subp-np4 "${common[@]}" --codec subspace --rank-k 16 --subspace-mode projected --schedule gpipe
same_losses subp-np1 subp-np4
# Learned projectors across ranks and in one process: each stage holds only its boundaries'
# bases and the start-up digest check compares each basis with its other holder's (it once
# compared whole stages and refused every multi-rank run); one stage has no boundary to cross.
# (Loss parity np1 vs np4 is XCTest's, to 1e-4 on the tiny model: here Adam and the retraction
# amplify round-off to ~1 % by step 6.)
run 1 proj-np1 "${common[@]}" --codec projector:8
run 4 proj-np4 "${common[@]}" --codec projector:8
# Per-layer token embeddings: each block's table is looked up with the ids the subspace message
# carries, so four ranks train the one-process model; a codec without ids is refused.
run 1 lemb-np1 "${common[@]}" --codec subspace:16+efixed=1+norm+layeremb
run 4 lemb-np4 "${common[@]}" --codec subspace:16+efixed=1+norm+layeremb
same_losses lemb-np1 lemb-np4
expect_error lemb-dense "need the token ids on every stage" 2 "${common[@]}" --codec int8 --layer-embedding
# Gradients in their own format: int8 activations (16 coordinates + bf16 scale + 2-byte id =
# 20 B/token), int4 gradients (8 + 2 = 10 B/token), each plus the message header's share.
run 4 gradfmt-np4 "${common[@]}" --codec subspace:16:int8 --grad-coords int4
fwd=$(field "$OUT/gradfmt-np4.jsonl" bytes_per_token_fwd | head -1); bwd=$(field "$OUT/gradfmt-np4.jsonl" bytes_per_token_bwd | head -1)
if [ -n "$fwd" ] && [ -n "$bwd" ] && awk -v f="$fwd" -v b="$bwd" 'BEGIN { exit !(f >= 20 && f < 20.5 && b >= 10 && b < 10.5) }'; then
  echo "mpi-checks: ok   gradfmt-np4: $fwd B/token forward (int8), $bwd backward (int4)"
else
  echo "mpi-checks: FAIL gradfmt-np4: bytes/token forward '$fwd', backward '$bwd'; expected ~20 and ~10" >&2; fail=1
fi

# A killed rank ends the job (non-zero) within 30 s; resuming from the last checkpoint gives
# the uninterrupted run's losses.
t0=$SECONDS; rc=0
timeout 60 mpirun --oversubscribe -np 4 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE $BIN train --data data/kjv \
  --eval-every 0 --eval-batches 4 "${common[@]}" --out "$OUT/resume" --log "$OUT/resume.jsonl" \
  --checkpoint-every 3 --debug-fail-at 2:4 > "$OUT/killed.out" 2>&1 || rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $((SECONDS - t0)) -le 30 ]; then
  echo "mpi-checks: ok   killed rank 2 at step 4: job exited $rc in $((SECONDS - t0)) s"
else
  echo "mpi-checks: FAIL killed rank: exit $rc after $((SECONDS - t0)) s (124 = hung)" >&2; cat "$OUT/killed.out" >&2; fail=1
fi
run 4 resume "${common[@]}" --checkpoint-every 3 --resume
grep -q '"type":"resume"' "$OUT/resume.jsonl" || { echo "mpi-checks: FAIL resume did not resume" >&2; fail=1; }
same_losses np4-1f1b resume

# Resuming on other data is refused (the checkpoint's identity covers shards and tokenizer),
# unless asked for on purpose.
mkdir -p "$OUT/otherdata" && cp data/kjv/tokenizer.json data/kjv/val_000.bin "$OUT/otherdata/"
head -c 200000 data/kjv/train_000.bin > "$OUT/otherdata/train_000.bin" && python3 - "$OUT/otherdata/train_000.bin" <<'PY'
import struct, sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); n = (len(b) - 1024) // 2
b[8:12] = struct.pack('<i', n); open(p, 'wb').write(b)
PY
cp -r "$OUT/resume" "$OUT/resume-data"
expect_error resume-other-data "training data: checkpoint read" 4 "${common[@]}" --data "$OUT/otherdata" --out "$OUT/resume-data" --resume
run 4 resume-new-data "${common[@]}" --data "$OUT/otherdata" --out "$OUT/resume-data" --resume --resume-new-data --steps 6
grep -q "resume-new-data: continuing" "$OUT/resume-new-data.out" && echo "mpi-checks: ok   --resume-new-data continues on the new data" \
  || { echo "mpi-checks: FAIL --resume-new-data" >&2; cat "$OUT/resume-new-data.out" >&2; fail=1; }

# Checkpoint problems: a different world size, a damaged stage file.
expect_error resume-mismatch "world size: checkpoint has 4, this run has 2" 2 "${common[@]}" --steps 6 --out "$OUT/resume" --resume
expect_error resume-other-lr "training settings: checkpoint has lr" 4 "${common[@]}" --steps 6 --out "$OUT/resume" --resume --lr 0.001
stage=$(ls -d "$OUT"/resume/checkpoints/step_* | tail -1)/stage_001.bin
head -c 1000 "$stage" > "$stage.cut" && mv "$stage.cut" "$stage"
# A damaged newest checkpoint: resume says so and falls back to the one before it.
run 4 resume-truncated "${common[@]}" --out "$OUT/resume" --resume
if grep -q "truncated" "$OUT/resume-truncated.out" && grep -q "trying the one before it" "$OUT/resume-truncated.out" \
   && grep -q "resumed after step 3" "$OUT/resume-truncated.out"; then
  echo "mpi-checks: ok   resume past a truncated checkpoint: $(grep -m1 -o 'checkpoint step [0-9]* is damaged' "$OUT/resume-truncated.out"), resumed after step 3"
else
  echo "mpi-checks: FAIL resume past a truncated checkpoint" >&2; cat "$OUT/resume-truncated.out" >&2; fail=1
fi

# A stopped rank (SIGSTOP: a hung node) ends the whole job within --recv-timeout + a few
# seconds, naming the rank and what was waited for; nothing keeps running.
t0=$SECONDS
timeout 120 mpirun --oversubscribe -np 3 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE $BIN train --data data/kjv \
  --eval-every 0 --eval-batches 4 --preset small --n-layer 3 --steps 400 --batch-size 2 --microbatches 4 --recv-timeout 5 \
  --out "$OUT/stopped" > "$OUT/stopped.out" 2>&1 &
mpid=$!
for _ in $(seq 1 60); do grep -q "^step     3/" "$OUT/stopped.out" 2>/dev/null && break; sleep 0.5; done
victim=$(pgrep -f -- "--out $OUT/stopped" | while read -r p; do [ "$(ps -o comm= -p "$p")" = protomodel ] && echo "$p"; done | tail -1)
t1=$SECONDS
kill -STOP "$victim" 2>/dev/null || true
rc=0; wait $mpid || rc=$?
kill -KILL "$victim" 2>/dev/null || true
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $((SECONDS - t1)) -le 25 ] && grep -q "waited 5 s" "$OUT/stopped.out"; then
  echo "mpi-checks: ok   stopped rank: job ended $((SECONDS - t1)) s after SIGSTOP: $(grep -m1 -o 'rank [0-9]*: waited 5 s for [^;]*' "$OUT/stopped.out")"
else
  echo "mpi-checks: FAIL stopped rank: exit $rc $((SECONDS - t1)) s after SIGSTOP (124 = hung)" >&2; tail -20 "$OUT/stopped.out" >&2; fail=1
fi

# Signals to mpirun, in a run with no checkpoint flags: every rank finishes its step, checkpoints and stops. SIGUSR1: mpirun
# exits 75; SIGTERM: mpirun exits 1 (OpenMPI's own abort status), the log ends with a stop record.
for sig in USR1 TERM; do
  rm -rf "$OUT/sig-$sig"
  timeout 120 mpirun --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE $BIN train --data data/kjv \
    --eval-every 0 --eval-batches 4 "${common[@]}" --steps 400 --out "$OUT/sig-$sig" \
    --log "$OUT/sig-$sig/train.jsonl" > "$OUT/sig-$sig.out" 2>&1 &
  mpid=$!
  for _ in $(seq 1 60); do grep -q "^step     2/" "$OUT/sig-$sig.out" 2>/dev/null && break; sleep 0.5; done
  # The signal goes to mpirun itself ($! is `timeout`, which does not pass SIGUSR1 on).
  kill -$sig "$(pgrep -P $mpid -x mpirun || echo $mpid)"; rc=0; wait $mpid || rc=$?
  want=$([ $sig = USR1 ] && echo 75 || echo 1)
  if [ $rc -eq $want ] && ls "$OUT/sig-$sig/checkpoints"/step_*/manifest.json >/dev/null 2>&1 && tail -n 1 "$OUT/sig-$sig/train.jsonl" | grep -q '"type":"stop"'; then
    echo "mpi-checks: ok   SIG$sig to mpirun: exit $rc, $(tail -n 1 "$OUT/sig-$sig/train.jsonl"), checkpoint $(ls "$OUT/sig-$sig/checkpoints")"
  else
    echo "mpi-checks: FAIL SIG$sig to mpirun: exit $rc (want $want)" >&2; tail -5 "$OUT/sig-$sig.out" >&2; fail=1
  fi
done

# Non-finite gradients stop the run with the step and stage named, or are skipped.
expect_error nonfinite "non-finite gradient norm" 4 "${common[@]}" --debug-nan-at 1:2
run 4 nonfinite-skip "${common[@]}" --debug-nan-at 1:2 --skip-nonfinite
grep -q '"skipped":true' "$OUT/nonfinite-skip.jsonl" && echo "mpi-checks: ok   --skip-nonfinite skipped the poisoned step and finished" \
  || { echo "mpi-checks: FAIL --skip-nonfinite" >&2; fail=1; }

# Bad flags: every rank stops at once, rank 0 names the flag.
expect_error bad-rank-k "128 must be in 1..<128" 2 --codec subspace --rank-k 128
expect_error bad-rank-k-codec "only applies with --codec subspace" 2 --rank-k 8
expect_error bad-link "expected off, a preset" 2 --link 80mb
expect_error bad-topk "must be in (0, 1]" 2 --codec topk --topk-fraction 1.5
expect_error local-sgd-adaptive "cannot run with an adaptive U" 4 --preset small --n-layer 4 --stages 2 --replica-sync-every 2 --codec subspace:8:adaptive --steps 1
expect_error local-sgd-one-pipeline "needs data-parallel replicas" 2 --replica-sync-every 2 --steps 1
expect_error bad-microbatches "microbatches" 2 --microbatches 0
expect_error bad-eval-batches "eval-batches" 2 --eval-batches 9223372036854775807
# A new run never overwrites another run's model or log, nor a data folder's tokenizer.
expect_error out-holds-model "already holds model.bin" 2 --steps 1 --out "$OUT/np4-1f1b"
expect_error out-is-data "holds prepared data" 2 --steps 1 --out data/kjv
expect_error ckpt-is-data "checkpoint-dir .*data/kjv holds prepared data" 2 --steps 1 --checkpoint-dir data/kjv --resume
expect_error log-is-folder "is a folder; give a file path" 2 --steps 1 --log "$OUT"
expect_error log-exists "already holds a log" 2 --steps 1 --log "$OUT/np1.jsonl"
# A flag may refine the codec word, never contradict it; a lever must act on the model.
expect_error codec-vs-rank "--rank-k 4 contradicts --codec subspace:8" 2 --steps 1 --codec subspace:8 --rank-k 4
expect_error codec-vs-efixed "--efixed-std 3.0 contradicts" 2 --steps 1 --codec subspace:8+efixed=2 --efixed-std 3
expect_error efixed-on-dense "has no E_fixed" 2 --steps 1 --codec dense+efixed=2
[ -s "$OUT/np1.jsonl" ] && cmp -s data/kjv/tokenizer.json "$OUT/otherdata/tokenizer.json" \
  && echo "mpi-checks: ok   the refused runs left the model, the log and the data as they were" \
  || { echo "mpi-checks: FAIL a refused run changed what it found" >&2; fail=1; }
expect_error bad-fail-at "rank 7 does not exist" 2 --debug-fail-at 7:1
expect_error too-many-stages "stages for 2 layers" 4 --preset tiny --steps 2
expect_error bf16-kernel-alone "applies to --matmul bf16 only" 2 --bf16-kernel amx --steps 1
expect_error split-mismatch "give one layer count per stage" 2 --split 4,2,2 --steps 2
expect_error split-coverage "split" 2 --split 4,3 --steps 2
expect_error missing-data "data/nowhere" 4 --data data/nowhere --steps 2
# Numbers that must be numbers in range (NaN, overflow): one error naming the flag, exit 1.
for f in "--grad-clip nan" "--weight-decay nan" "--min-lr nan" "--recv-timeout nan" "--microbatches 9223372036854775807"; do
  rc=0; msg=$(timeout 60 $BIN train --data data/kjv $f --steps 1 2>&1) || rc=$?
  if [ $rc -eq 1 ] && echo "$msg" | grep -q "^Error: ${f%% *} "; then echo "mpi-checks: ok   $f: $(echo "$msg" | grep -m1 '^Error')"
  else echo "mpi-checks: FAIL $f: exit $rc: $msg" >&2; fail=1; fi
done
rc=0; msg=$(timeout 60 $BIN sample --run "$OUT/np1" --temperature nan 2>&1) || rc=$?
[ $rc -eq 1 ] && echo "$msg" | grep -q "temperature" && echo "mpi-checks: ok   sample --temperature nan: exit 1" \
  || { echo "mpi-checks: FAIL sample --temperature nan: exit $rc: $msg" >&2; fail=1; }
# eval on data tokenized another way is refused (the loss would mean nothing), and export
# leaves a foreign Hugging Face folder with the same file names alone.
head -c 300000 data/kjv.txt > "$OUT/other.txt"
$BIN prepare --input "$OUT/other.txt" --out "$OUT/othertok" --vocab-size 300 > /dev/null 2>&1
rc=0; msg=$(timeout 60 $BIN eval --model "$OUT/np1" --data "$OUT/othertok" 2>&1) || rc=$?
mkdir -p "$OUT/foreign-hf" && echo '{"model_type":"llama"}' > "$OUT/foreign-hf/config.json"
rc2=0; msg2=$(timeout 60 $BIN export --run "$OUT/np1" --out "$OUT/foreign-hf" 2>&1) || rc2=$?
if [ $rc -eq 1 ] && echo "$msg" | grep -q "another tokenizer" && [ $rc2 -eq 1 ] && echo "$msg2" | grep -q "not an earlier protomodel export" \
   && [ "$(cat "$OUT/foreign-hf/config.json")" = '{"model_type":"llama"}' ]; then
  echo "mpi-checks: ok   eval on other-tokenizer data and export into a foreign folder refused: $(echo "$msg2" | cut -c1-80)…"
else
  echo "mpi-checks: FAIL eval/export refusals: exit $rc / $rc2: $msg / $msg2" >&2; fail=1
fi
# The bare command trains by default; where the default data is missing it names the command that makes it.
mkdir -p "$OUT/empty-cwd"
rc=0; msg=$(cd "$OUT/empty-cwd" && timeout 60 "$OLDPWD/$BIN" 2>&1) || rc=$?
[ $rc -ne 0 ] && echo "$msg" | grep -q "protomodel prepare" && echo "mpi-checks: ok   bare protomodel without data: exit $rc, $(echo "$msg" | grep -m1 Error | cut -c1-90)…" \
  || { echo "mpi-checks: FAIL bare protomodel without data: exit $rc: $msg" >&2; fail=1; }
# A disk that fills up mid-run (a 24 MiB tmpfs: the first checkpoint of 2 × 11 MB fits, the
# second, written before the first is pruned, does not): the error names the file and the
# fix, every rank stops, the checkpoint before it stays complete and nothing half-written
# is left. Needs root for the mount; says SKIP otherwise.
full=$(mktemp -d)
trap '{ umount "$full"; rmdir "$full"; } 2>/dev/null || true' EXIT  # "|| true": a failing trap would be the script's exit status
if mount -t tmpfs -o size=24m tmpfs "$full" 2>/dev/null; then
  rc=0; timeout 120 mpirun --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE $BIN train --data data/kjv \
    --preset small --steps 4 --batch-size 1 --microbatches 2 --checkpoint-every 2 --keep 1 --out "$full/run" > "$OUT/disk-full.out" 2>&1 || rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "step_000004/stage_00.\.bin: write failed: No space left on device — the disk is full; free space" "$OUT/disk-full.out" \
     && [ -f "$full/run/checkpoints/step_000002/manifest.json" ] && [ -z "$(ls -A "$full/run/checkpoints/step_000004" 2>/dev/null)" ]; then
    echo "mpi-checks: ok   disk-full: exit $rc, step 2 intact, $(grep -m1 -o 'stage_00.\.bin: write failed[^—]*' "$OUT/disk-full.out")"
  else
    echo "mpi-checks: FAIL disk-full: exit $rc (124 = hung)" >&2; cat "$OUT/disk-full.out" >&2; find "$full" -ls >&2; fail=1
  fi
  # The same file system read-only (root ignores permission bits, not this): refused before any work.
  mount -o remount,ro "$full" || { echo "mpi-checks: FAIL cannot remount $full read-only" >&2; fail=1; }
  rc=0; timeout 60 mpirun --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE $BIN train --data data/kjv \
    --preset small --steps 2 --batch-size 1 --microbatches 2 --out "$full/run" > "$OUT/read-only.out" 2>&1 || rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "$full/run: cannot write here: Read-only file system — check" "$OUT/read-only.out" \
     && ! grep -q "^step " "$OUT/read-only.out"; then
    echo "mpi-checks: ok   read-only --out: exit $rc before any step: $(grep -m1 -o 'cannot write here.*' "$OUT/read-only.out")"
  else
    echo "mpi-checks: FAIL read-only --out: exit $rc (124 = hung)" >&2; cat "$OUT/read-only.out" >&2; fail=1
  fi
  umount "$full" || true
else
  echo "mpi-checks: SKIP disk-full, read-only (cannot mount a tmpfs here: needs root)"
fi
rmdir "$full" 2>/dev/null || true
# Durability: traced system calls of a 2-rank run that checkpoints show every checkpoint
# folder's name flushed in its parent and every file renamed into it flushed in it before
# its manifest completes it (scripts/fsync_check.py).
rc=0; timeout 120 strace -f -o "$OUT/fsync.trace" -e trace=openat,mkdir,mkdirat,rename,renameat,renameat2,fsync \
  mpirun --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE $BIN train --data data/kjv --preset small \
  --steps 2 --batch-size 1 --microbatches 2 --checkpoint-every 1 --eval-every 0 --out "$OUT/fsync" > "$OUT/fsync.out" 2>&1 || rc=$?
msg=""
if [ $rc -eq 0 ] && msg=$(python3 scripts/fsync_check.py "$OUT/fsync.trace" 2); then echo "mpi-checks: ok   $msg"
else echo "mpi-checks: FAIL fsync: exit $rc: ${msg:-}" >&2; cat "$OUT/fsync.out" >&2; fail=1; fi
# The speedrun preset end to end in its short form: 4 codecs × 7 links in the table, the
# reference's rows beside them, the plots written.
rc=0; timeout 900 mpirun --oversubscribe -np 8 -x OPENBLAS_NUM_THREADS -x OPENBLAS_CORETYPE $BIN speedrun --quick \
  --bench-out "$OUT/speedrun-quick" > "$OUT/speedrun-quick.out" 2>&1 || rc=$?
rows=$(tail -n +2 "$OUT/speedrun-quick/results.csv" 2>/dev/null | grep -c . || true)
if [ $rc -eq 0 ] && [ "$rows" = 28 ] && grep -q "ReparamSSN k=160" "$OUT/speedrun-quick/results.md" \
   && grep -q "stage speed 30 TFLOP/s" "$OUT/speedrun-quick/results.md" && [ -s "$OUT/speedrun-quick/loss_vs_time_200mbit_50ms.svg" ]; then
  echo "mpi-checks: ok   speedrun --quick: $rows rows, reference rows, plots"
else
  echo "mpi-checks: FAIL speedrun --quick: exit $rc, $rows rows" >&2; cat "$OUT/speedrun-quick.out" >&2; fail=1
fi
# converge end to end on a tiny model: two variants, then one — the second run reuses dense and
# its note names the stored int8 run the shorter tables no longer show.
conv=(--preset tiny --stages 2 --steps 4 --eval-every 2 --batch-size 2 --microbatches 2 --bench-out "$OUT/converge")
rc=0; { timeout 300 $BIN converge "${conv[@]}" --variants dense,int8 && timeout 300 $BIN converge "${conv[@]}" --variants dense; } \
  > "$OUT/converge.out" 2>&1 || rc=$?
if [ $rc -eq 0 ] && grep -q "dense: reused" "$OUT/converge.out" && grep -q "^note .*runs/ keeps 1 more (int8)" "$OUT/converge.out" \
   && [ "$(grep -c '^| int8' "$OUT/converge/results.md")" = 0 ]; then
  echo "mpi-checks: ok   converge: reused dense, $(grep -m1 '^note' "$OUT/converge.out" | cut -c1-90)…"
else
  echo "mpi-checks: FAIL converge: exit $rc" >&2; cat "$OUT/converge.out" >&2; fail=1
fi
# --stored-only rewrites the tables from stored runs and trains nothing: a variant without one is
# named, and no run of it appears.
rc=0; timeout 120 $BIN converge "${conv[@]}" --variants dense --stored-only > "$OUT/converge-stored.out" 2>&1 || rc=$?
rc2=0; timeout 120 $BIN converge "${conv[@]}" --variants dense,int4 --stored-only >> "$OUT/converge-stored.out" 2>&1 || rc2=$?
if [ $rc -eq 0 ] && [ $rc2 -ne 0 ] && [ $rc2 -ne 124 ] && grep -q "no stored run of int4" "$OUT/converge-stored.out" \
   && ! grep -q "training" "$OUT/converge-stored.out" && ! ls "$OUT/converge/runs" | grep -q int4; then
  echo "mpi-checks: ok   converge --stored-only: tables from stored runs; $(grep -m1 'no stored run' "$OUT/converge-stored.out" | cut -c1-70)…"
else
  echo "mpi-checks: FAIL converge --stored-only: exit $rc / $rc2" >&2; cat "$OUT/converge-stored.out" >&2; fail=1
fi
# --seed next to --seeds is refused (--seeds sets every run's seed), before any training.
rc=0; msg=$(timeout 60 $BIN converge "${conv[@]}" --variants dense --seeds 1,2 --seed 5 2>&1) || rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "$msg" | grep -q -- "--seed 5 and --seeds together" && [ ! -e "$OUT/converge/seed-1" ]; then
  echo "mpi-checks: ok   converge --seed with --seeds: exit $rc: $(echo "$msg" | grep -m1 -- '--seeds together')"
else
  echo "mpi-checks: FAIL converge --seed with --seeds: exit $rc (124 = hung): $msg" >&2; fail=1
fi
# bench-engine --profile --json is one JSON object (the profile inside it), and a shape too
# large for memory is refused with its size instead of crashing in the allocator.
json_ok=0; $BIN bench-engine --preset tiny --steps 2 --warmup 0 --profile --json 2>&1 \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["profile"] and "fwd_ms" in d["profile"][0]' 2>/dev/null || json_ok=$?
rc=0; msg=$( (ulimit -v 3000000; $BIN bench-engine --preset tiny --steps 2 --batch-size 1048576 2>&1) ) || rc=$?
if [ $json_ok -eq 0 ] && [ $rc -eq 1 ] && echo "$msg" | grep -q "would need"; then
  echo "mpi-checks: ok   bench-engine: --profile --json parses; $(echo "$msg" | head -1 | cut -c1-80)…"
else
  echo "mpi-checks: FAIL bench-engine --profile --json or the memory refusal: $msg" >&2; fail=1
fi
# Variant lists that would give wrong tables are refused up front: --seeds without dense (the
# gaps would be NaN), the same variant twice (one run listed twice).
for bad in "--seeds 1,2 --variants int8|add dense to --variants" "--variants dense,int8,dense|names dense twice"; do
  rc=0; msg=$(timeout 60 $BIN converge "${conv[@]}" ${bad%%|*} 2>&1) || rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "$msg" | grep -q -- "${bad##*|}"; then
    echo "mpi-checks: ok   converge ${bad%%|*}: $(echo "$msg" | head -1)"
  else
    echo "mpi-checks: FAIL converge ${bad%%|*}: exit $rc: $msg" >&2; fail=1
  fi
done
PROTOMODEL_MAX_MESSAGE_BYTES=12 expect_error bad-message-limit "PROTOMODEL_MAX_MESSAGE_BYTES='12'" 2 --steps 2
exit $fail
