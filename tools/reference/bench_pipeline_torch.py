"""The protomodel GPT as an S-stage torch.distributed.pipelining pipeline (PipelineStage +
Schedule1F1B over gloo, one process and one thread per stage, link off), trained on random
tokens like `mpirun -np S protomodel train`; prints one JSON line: median wall-clock step
time and tokens/s after the warm-up, and every rank's peak resident memory. Dev-only.
Usage: python3 bench_pipeline_torch.py [--stages 8 --d-model 256 --n-layer 8 --n-head 8
       --seq-len 256 --vocab-size 1024 --batch-size 4 --microbatches 8 --steps 12 --warmup 3]"""
import argparse
import json
import os
import resource
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.distributed.pipelining import PipelineStage, Schedule1F1B

from model import init_params, param_layout, rmsnorm, rope, rope_tables


class Stage(torch.nn.Module):
    """Blocks lo..<hi of the model; stage 0 adds the embedding, the last the final norm and head."""

    def __init__(self, P, lo, hi, first, last, cfg, bf16=False):
        super().__init__()
        self.cfg, self.lo, self.hi, self.first, self.last, self.bf16 = cfg, lo, hi, first, last, bf16
        keep = [n for n in P if (first and n == "wte") or (last and n in ("lnf", "lm_head"))
                or (n.startswith("h") and lo <= int(n[1:].split(".")[0]) < hi)]
        self.p = torch.nn.ParameterDict({n.replace(".", "_"): torch.nn.Parameter(P[n].detach().clone())
                                         for n in keep})

    def forward(self, x):
        # --bf16: matmuls and SDPA under CPU autocast; what crosses a stage boundary stays fp32,
        # as protomodel's dense wire is (the peer of `train --matmul bf16`).
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.blocks(x).float()

    def blocks(self, x):
        c = self.cfg
        C, NH, eps = c["C"], c["NH"], c["eps"]
        cos, sin = c["rope"]
        if self.first:
            x = self.p["wte"][x]
        B, T, _ = x.shape
        hs = C // NH
        for l in range(self.lo, self.hi):
            g = lambda n: self.p[f"h{l}_{n}"]
            h = rmsnorm(x, g("ln1"), eps)
            q, k, v = (h @ g("qkv")).split(C, dim=-1)
            q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + y.transpose(1, 2).reshape(B, T, C) @ g("attn_proj")
            h = rmsnorm(x, g("ln2"), eps)
            x = x + F.relu(h @ g("fc")).square() @ g("fc_proj")
        if self.last:
            x = rmsnorm(x, self.p["lnf"], eps) @ self.p["lm_head"]
        return x


def run(rank, a, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=a.stages)
    S, C, L, NH, T, V = a.stages, a.d_model, a.n_layer, a.n_head, a.seq_len, a.vocab_size
    cfg = dict(C=C, NH=NH, eps=1e-5, rope=rope_tables(T, C // NH, 10000.0, torch.float32))
    gen = torch.Generator().manual_seed(0)
    P = init_params(param_layout(V, C, L, 4 * C), L, 0.02, torch.float32, gen)
    lo, hi = L * rank // S, L * (rank + 1) // S
    module = Stage(P, lo, hi, rank == 0, rank == S - 1, cfg, bf16=bool(a.bf16))
    del P
    stage = PipelineStage(module, rank, S, torch.device("cpu"))
    loss_fn = lambda logits, y: F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    sched = Schedule1F1B(stage, n_microbatches=a.microbatches, loss_fn=loss_fn)
    decay = [p for p in module.parameters() if p.dim() >= 2]
    no_decay = [p for p in module.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    rows = a.batch_size * a.microbatches
    times, losses = [], []
    for step in range(a.warmup + a.steps):
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        ids = torch.randint(0, V, (rows, T + 1), generator=gen)  # same stream on every rank
        if rank == 0:
            sched.step(ids[:, :-1].contiguous())
        elif rank == S - 1:
            out = []
            sched.step(target=ids[:, 1:].contiguous(), losses=out)
            losses.append(float(sum(o.detach() for o in out) / len(out)))
        else:
            sched.step()
        # Global gradient-norm clip across stages, as protomodel does (one all-reduce).
        sq = torch.stack([p.grad.pow(2).sum() for p in module.parameters() if p.grad is not None]).sum()
        dist.all_reduce(sq)
        scale = min(1.0, 1.0 / (sq.sqrt().item() + 1e-6))
        for p in module.parameters():
            if p.grad is not None:
                p.grad.mul_(scale)
        opt.step()
        dist.barrier()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    rss = [None] * S
    dist.all_gather_object(rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    step_s = torch.tensor([statistics.median(times), losses[0] if losses else 0.0, losses[-1] if losses else 0.0])
    dist.broadcast(step_s, S - 1)
    if rank == 0:
        s, first, last = step_s.tolist()
        print(json.dumps({"engine": f"torch.distributed.pipelining {torch.__version__} Schedule1F1B gloo"
                                    + (" autocast-bf16" if a.bf16 else ""),
                          "stages": S, "step_s": s, "tokens_per_s": rows * T / s, "peak_rss_mb": rss,
                          "loss_first": first, "loss_last": last}))
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(stages=8, d_model=256, n_layer=8, n_head=8, seq_len=256, vocab_size=1024,
                     batch_size=4, microbatches=8, steps=12, warmup=3, port=29517).items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    ap.add_argument("--bf16", action="store_true", help="stages under torch.autocast('cpu', torch.bfloat16)")
    a = ap.parse_args()
    mp.spawn(run, args=(a, a.port), nprocs=a.stages, join=True)


if __name__ == "__main__":
    main()
