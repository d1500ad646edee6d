"""Dev-only check that a `protomodel export` folder is what transformers and tokenizers
expect: the loss transformers computes on the validation windows equals
`protomodel eval --json` within 1e-4, and `tokenizers` encodes the validation text to
exactly protomodel's ids.

Usage: python3 tools/hf/check_export.py EXPORT_DIR DATA_DIR PROTOMODEL_EVAL_JSON [--tokens N]
Needs: pip install "torch==2.13.0+cpu" "transformers==5.24.0" "tokenizers==0.23.3" (pinned;
the runtime never uses them). Prints one JSON line and exits 1 on a mismatch.
"""
import json, sys, struct, argparse
import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("export"); ap.add_argument("data"); ap.add_argument("eval_json")
ap.add_argument("--tokens", type=int, default=None)
a = ap.parse_args()

ref = json.load(open(a.eval_json))
model = AutoModelForCausalLM.from_pretrained(a.export, dtype=torch.float32)
model.eval()
tok = AutoTokenizer.from_pretrained(a.export)
T = model.config.max_position_embeddings

def shard(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<i", raw[8:12])[0]
    return np.frombuffer(raw[1024:1024 + 2 * n], dtype=np.uint16).astype(np.int64)

import glob
val = np.concatenate([shard(p) for p in sorted(glob.glob(f"{a.data}/val_*.bin"))])
windows = len(val) // (T + 1)
if a.tokens: windows = min(windows, a.tokens // T)
losses = []
with torch.no_grad():
    for w in range(windows):
        win = torch.from_numpy(val[w * (T + 1):(w + 1) * (T + 1)])[None]
        out = model(input_ids=win[:, :T], labels=None)
        logits = out.logits[0].double()
        losses.append(torch.nn.functional.cross_entropy(logits, win[0, 1:]).item())
hf_loss = float(np.mean(losses))

# Tokenizer: decode the validation ids to bytes with the exported vocabulary, then encode the
# text with `tokenizers`; the ids must come back unchanged. Text that is not valid UTF-8
# cannot be passed to tokenizers (Python strings are Unicode): such windows are counted.
vocab = tok.backend_tokenizer.get_vocab()
byte_of = {}
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256)); cs = bs[:]; n = 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + n); n += 1
u2b = {chr(c): b for b, c in zip(bs, cs)}
id2bytes = {i: bytes(u2b[ch] for ch in s) for s, i in vocab.items()}
ids = val[: windows * (T + 1)].tolist()
data = b"".join(id2bytes[i] for i in ids)
try:
    text = data.decode("utf-8")
    enc = tok.backend_tokenizer.encode(text, add_special_tokens=False).ids
    tok_ok = enc == ids
    first_diff = next((i for i, (x, y) in enumerate(zip(enc, ids)) if x != y), None) if not tok_ok else None
    invalid = False
except UnicodeDecodeError:
    tok_ok, first_diff, invalid = None, None, True

result = {"hf_loss": hf_loss, "protomodel_loss": ref["loss"], "abs_diff": abs(hf_loss - ref["loss"]),
          "windows": windows, "tokenizer_ids_equal": tok_ok, "first_token_difference": first_diff,
          "text_not_utf8": invalid, "transformers": __import__("transformers").__version__}
print(json.dumps(result))
sys.exit(0 if result["abs_diff"] <= 1e-4 and tok_ok else 1)
