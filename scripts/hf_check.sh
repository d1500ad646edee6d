#!/usr/bin/env bash
# Models out: trains a dense and a subspace model briefly, exports each as a Hugging Face
# folder, and checks with transformers and tokenizers (dev-only, pinned) that the loss on the
# validation windows equals `protomodel eval` within 1e-4 and that tokenizers gives
# protomodel's ids. Skips, saying why, where the Python packages cannot be installed.
# Needs the release build and data/kjv (scripts/test.sh provides both).
set -euo pipefail
cd "$(dirname "$0")/.."
pins=("torch==2.13.0+cpu" "transformers==5.24.0" "tokenizers==0.23.3" "safetensors==0.8.0")
if ! python3 -c "import torch, transformers, tokenizers" 2>/dev/null || \
   [ "$(python3 -c 'import transformers; print(transformers.__version__)' 2>/dev/null)" != 5.24.0 ]; then
  if ! python3 -m pip install -q "${pins[@]}" >/tmp/protomodel-hf-pip.log 2>&1; then
    echo "hf-check: skipped — could not install ${pins[*]} (see /tmp/protomodel-hf-pip.log)"; exit 0
  fi
fi
BIN=.build/release/protomodel
OUT=runs/hf-check
rm -rf "$OUT"; mkdir -p "$OUT"
fail=0
for codec in dense subspace:16+efixed=1; do
  name=${codec%%:*}
  $BIN train --data data/kjv --codec "$codec" --steps 30 --eval-every 0 --out "$OUT/$name" > "$OUT/$name.train.out" 2>&1
  $BIN export --run "$OUT/$name" --out "$OUT/$name-hf" > /dev/null
  $BIN eval --model "$OUT/$name" --data data/kjv --json > "$OUT/$name.eval.json"
  if python3 tools/hf/check_export.py "$OUT/$name-hf" data/kjv "$OUT/$name.eval.json" 2>/dev/null > "$OUT/$name.check.json"; then
    echo "hf-check: ok   $codec: $(cat "$OUT/$name.check.json")"
  else
    echo "hf-check: FAIL $codec: $(cat "$OUT/$name.check.json")" >&2; fail=1
  fi
done
exit $fail
