"""Trains the same model and config as `protomodel bench-engine` in PyTorch eager (CPU),
on the same kind of token stream, and prints tokens/s as one JSON line. Dev-only.
Usage: python3 bench_torch.py --threads 2 [--d-model 256 --n-layer 4 --n-head 4 --seq-len 256
       --vocab-size 256 --batch-size 8 --steps 20 --warmup 3] [--sdpa] [--bf16]"""
import argparse
import json
import time
import torch
from model import param_layout, init_params, forward, rope_tables, make_optimizer


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(d_model=256, n_layer=4, n_head=4, seq_len=256, vocab_size=256,
                     batch_size=8, steps=20, warmup=3, threads=2).items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    ap.add_argument("--sdpa", action="store_true", help="use F.scaled_dot_product_attention")
    ap.add_argument("--bf16", action="store_true",
                    help="forward under torch.autocast('cpu', torch.bfloat16): matmuls (and SDPA) in bf16, "
                         "weights and optimizer fp32 (the peer of protomodel --matmul bf16)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    C, L, NH, T, V, B = a.d_model, a.n_layer, a.n_head, a.seq_len, a.vocab_size, a.batch_size
    gen = torch.Generator().manual_seed(0)
    P = init_params(param_layout(V, C, L, 4 * C), L, 0.02, torch.float32, gen)
    cfg = dict(V=V, T=T, L=L, NH=NH, C=C, eps=1e-5, rope=rope_tables(T, C // NH, 10000.0, torch.float32))
    ids = torch.randint(0, V, (B, T + 1), generator=gen)
    x, y = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    opt = make_optimizer(P, 1e-3, (0.9, 0.95), 1e-8, 0.1)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            _, loss = forward(P, x, y, cfg, use_sdpa=a.sdpa)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    secs = time.perf_counter() - t0
    print(json.dumps({"engine": "pytorch " + torch.__version__ + (" sdpa" if a.sdpa else "") + (" autocast-bf16" if a.bf16 else ""),
                      "threads": a.threads, "tokens_per_s": B * T * a.steps / secs,
                      "ms_per_step": 1000 * secs / a.steps}))


if __name__ == "__main__":
    main()
