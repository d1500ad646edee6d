"""Writes Tests/ProtoCoreTests/Fixtures/gpt_tiny.bin: a tiny model's weights, one batch,
the logits, loss and every gradient, and the losses of 10 AdamW steps, all computed in
float64 by PyTorch. Dev-only; the Swift test reads the file and never needs torch.

Format (little-endian): 64 int32 header words (0: magic 20261124, 1: version 1, 2: V,
3: T, 4: L, 5: NH, 6: C, 7: H, 8: B, 9: steps, 10: n_params), 32 float32 words (0: max_lr,
1: min_lr, 2: warmup, 3: total, 4: beta1, 5: beta2, 6: adam eps, 7: weight decay, 8: clip,
9: norm eps, 10: rope base), then float32 params, int32 ids (B·T), int32 targets (B·T),
float32 logits (B·T·V), float32 loss, float32 grads, float32 losses (steps)."""
import struct
import sys
from pathlib import Path
import torch
from model import param_layout, init_params, forward, rope_tables, lr_at, make_optimizer

MAGIC, VERSION = 20261124, 1
V, T, L, NH, C, B = 64, 72, 2, 2, 32, 2   # T > 64 exercises two causal row blocks
H = 4 * C
STEPS = 10
hp = dict(max_lr=1e-2, min_lr=1e-3, warmup=3, total=10, beta1=0.9, beta2=0.95,
          adam_eps=1e-8, wd=0.1, clip=1.0, norm_eps=1e-5, rope_base=10000.0)


def main(out):
    dt = torch.float64
    gen = torch.Generator().manual_seed(0)
    layout = param_layout(V, C, L, H)
    P = init_params(layout, L, 0.1, dt, gen)  # larger std than training so every path matters
    for n, _ in layout:                       # non-trivial norm gains
        if P[n].dim() == 1:
            with torch.no_grad():
                P[n].add_(0.1 * torch.randn(P[n].shape, generator=gen, dtype=dt))
    ids = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    cfg = dict(V=V, T=T, L=L, NH=NH, C=C, eps=hp["norm_eps"],
               rope=rope_tables(T, C // NH, hp["rope_base"], dt))
    init = {n: P[n].detach().clone() for n, _ in layout}

    logits, loss = forward(P, ids, targets, cfg)
    loss.backward()
    grads = {n: P[n].grad.detach().clone() for n, _ in layout}

    opt = make_optimizer(P, hp["max_lr"], (hp["beta1"], hp["beta2"]), hp["adam_eps"], hp["wd"])
    losses = []
    for step in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, hp["max_lr"], hp["min_lr"], hp["warmup"], hp["total"])
        opt.zero_grad(set_to_none=True)
        _, l = forward(P, ids, targets, cfg)
        l.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), hp["clip"])
        opt.step()
        losses.append(l.item())

    n_params = sum(t.numel() for t in init.values())
    f32 = lambda t: t.detach().to(torch.float32).contiguous().numpy().tobytes()
    i32 = lambda t: t.to(torch.int32).contiguous().numpy().tobytes()
    header = [MAGIC, VERSION, V, T, L, NH, C, H, B, STEPS, n_params] + [0] * 53
    fhdr = [hp[k] for k in ("max_lr", "min_lr", "warmup", "total", "beta1", "beta2",
                            "adam_eps", "wd", "clip", "norm_eps", "rope_base")] + [0.0] * 21
    with open(out, "wb") as f:
        f.write(struct.pack("<64i", *header))
        f.write(struct.pack("<32f", *fhdr))
        for n, _ in layout:
            f.write(f32(init[n]))
        f.write(i32(ids)); f.write(i32(targets))
        f.write(f32(logits)); f.write(struct.pack("<f", loss.item()))
        for n, _ in layout:
            f.write(f32(grads[n]))
        f.write(struct.pack(f"<{STEPS}f", *losses))
    print(f"wrote {out}: {Path(out).stat().st_size} bytes, loss {loss.item():.6f}, "
          f"10-step losses {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         str(Path(__file__).resolve().parents[2] / "Tests/ProtoCoreTests/Fixtures/gpt_tiny.bin"))
