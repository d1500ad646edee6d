"""Dev-only exploration of boundary-compression variants in PyTorch, before any of them is
built into protomodel. Same model as tools/reference/model.py (RMSNorm with gain, RoPE,
ReLU² MLP, untied head), same optimiser settings as `protomodel train`, KJV shards.

It reports validation loss on the *tuning* slice of val (micro-batches 64..127), never on
the slice protomodel's convergence benchmark reports (0..63), so nothing here tunes on the
reported figures. The pipeline is 8 stages × 1 block: a boundary after every block but the
last.

Usage: python3 explore.py VARIANT [--k 16] [--steps 600] [--quant none|int8|int4|fp8] ...
"""
import argparse, json, math, time
import numpy as np
import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("variant", choices=["dense", "subspace", "adaptive", "proj", "pca", "resbm", "quant", "sublift"])
ap.add_argument("--k", type=int, default=16)
ap.add_argument("--steps", type=int, default=600)
ap.add_argument("--d", type=int, default=128)
ap.add_argument("--layers", type=int, default=8)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--T", type=int, default=128)
ap.add_argument("--B", type=int, default=32)
ap.add_argument("--lr", type=float, default=3e-3)
ap.add_argument("--ulr", type=float, default=None, help="lr of U / projectors (default lr)")
ap.add_argument("--quant", default="none", choices=["none", "int8", "int4", "fp8", "int2", "bf16"])
ap.add_argument("--quant-bwd", default=None, choices=["none", "int8", "int4", "fp8", "int2", "bf16"], help="format of the backward (gradient) coordinates when --quant is set; default: that of --quant")
ap.add_argument("--efixed-std", type=float, default=0.02)
ap.add_argument("--no-efixed", action="store_true", help="proj: no E_fixed subtraction")
ap.add_argument("--subnorm", action="store_true", help="gain-free RMSNorm on sublayer outputs")
ap.add_argument("--mlp", type=int, default=None)
ap.add_argument("--stage-emb", action="store_true", help="each stage adds its own trainable V×d table of its ids to its input stream, not sent")
ap.add_argument("--prev-emb", action="store_true", help="with --stage-emb: each stage also adds a trainable V×d table of the previous token's id (zero at t=0), not sent")
ap.add_argument("--write-gain", action="store_true", help="trainable gain after the gain-free sublayer norm (k channels when constrained)")
ap.add_argument("--attn-full", action="store_true", help="constrained blocks: the MLP reads the full-width attention write; only its span(U) part joins the stream that is sent")
ap.add_argument("--ids", action="store_true", help="resbm: add E_fixed[ids] at the receiver")
ap.add_argument("--every", type=int, default=1, help="adaptive/proj update every N steps")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=1337)
ap.add_argument("--eval-every", type=int, default=100)
ap.add_argument("--data", default="data/kjv", help="prepared data folder (run from the repository root)")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)

def shard(path):
    raw = np.fromfile(path, dtype=np.uint8)
    n = int(np.frombuffer(raw[:1024].tobytes(), dtype=np.int32)[2])
    return torch.from_numpy(np.frombuffer(raw[1024:1024 + 2 * n].tobytes(), dtype=np.uint16).astype(np.int64))

train = shard(f"{a.data}/train_000.bin"); val = shard(f"{a.data}/val_000.bin")
V = 1024; T = a.T; d = a.d; L = a.layers; NH = a.heads; H = a.mlp or 4 * d; k = a.k
wins = torch.arange(0, train.numel() - T, T)
vwins = torch.arange(0, val.numel() - T, T)
tune = vwins[256:512]  # micro-batches 64..127 of B=4 in protomodel's val order
gen = torch.Generator().manual_seed(42)

def batch_of(src, starts):
    idx = starts[:, None] + torch.arange(T + 1)[None, :]
    w = src[idx]
    return w[:, :-1], w[:, 1:]

half = (d // NH) // 2
inv = 10000.0 ** (-2 * torch.arange(half, dtype=torch.float64) / (d // NH))
ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
cos, sin = torch.cos(ang).float(), torch.sin(ang).float()

def rope(x):
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

def rms(x, w=None, eps=1e-5):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * w if w is not None else y

# ---- quantisation of boundary coordinates (both directions), straight-through
def q_fwd(x, kind):
    if kind == "none": return x
    if kind == "bf16": return x.to(torch.bfloat16).float()
    if kind == "fp8":
        s = x.abs().amax(-1, keepdim=True).clamp_min(1e-30) / 448.0
        return (x / s).to(torch.float8_e4m3fn).float() * s
    levels = {"int8": 127, "int4": 7, "int2": 1}[kind]
    s = x.abs().amax(-1, keepdim=True).clamp_min(1e-30) / levels
    return (x / s).round().clamp(-levels, levels) * s

class Q(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kind): ctx.kind = kind; return q_fwd(x, kind)
    @staticmethod
    def backward(ctx, g): return q_fwd(g, a.quant_bwd or ctx.kind), None

def orth(n, m, g):
    q, r = torch.linalg.qr(torch.randn(n, m, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()

g0 = torch.Generator().manual_seed(a.seed)
P = {}
def par(name, shape, std):
    t = torch.randn(shape, generator=g0) * std if std > 0 else torch.ones(shape)
    P[name] = t.requires_grad_(True); return P[name]

sub = a.variant in ("subspace", "adaptive", "quant", "sublift")
splitemb = sub or a.variant in ("proj", "pca")
rstd = 0.02 / math.sqrt(2 * L)
U = orth(d, k, g0)
if a.variant == "adaptive": U.requires_grad_(True)
Efix = torch.randn(V, d, generator=g0) * a.efixed_std
par("wte", (V, k) if sub else (V, d), 0.02)
for l in range(L):
    c = sub and l < L - 1
    par(f"h{l}.ln1", (d,), 0); par(f"h{l}.qkv", (d, 3 * d), 0.02)
    par(f"h{l}.attn_proj", (d, k if c and not a.attn_full else d), rstd); par(f"h{l}.ln2", (d,), 0)
    par(f"h{l}.fc", (d, H), 0.02); par(f"h{l}.fc_proj", (H, k if c else d), rstd)
    if a.write_gain:
        par(f"h{l}.ga", (k if c else d,), 0); par(f"h{l}.gm", (k if c else d,), 0)
par("lnf", (d,), 0); par("lm_head", (d, V), 0.02)
if a.stage_emb:  # zeros, drawn from no generator: every other weight starts as without the option
    for l in range(L): P[f"h{l}.semb"] = torch.zeros(V, d).requires_grad_(True)
    if a.prev_emb:
        for l in range(L): P[f"h{l}.pemb"] = torch.zeros(V, d).requires_grad_(True)
A = {}
if a.variant in ("proj", "pca"):
    for l in range(L - 1): A[l] = orth(d, k, g0).requires_grad_(a.variant == "proj")
if a.variant == "sublift":
    for l in range(1, L): par(f"lift{l}.up", (k, d), 0.02)
if a.variant == "resbm":
    # boundary after block l: keep first k channels + down(MLP out) -> k; receiver lifts k->d
    for l in range(L - 1):
        par(f"rb{l}.down", (H, k), rstd); par(f"rb{l}.up", (k, d), 0.02)
pca_cov = {l: torch.zeros(d, d) for l in A}

def write(l, y, name):
    """y @ W for a residual write of block l, through U when constrained."""
    W = P[f"h{l}.{name}"]
    out = y @ W
    c = sub and l < L - 1
    if a.write_gain:  # gain-free norm of the d-dim write (U orthonormal: ‖c·Uᵀ‖ = ‖c‖), then a gain
        out = out * torch.rsqrt(out.pow(2).sum(-1, keepdim=True) / d + 1e-5)
        out = out * P[f"h{l}.{'ga' if name == 'attn_proj' else 'gm'}"]
        return out @ U.T if c else out
    if c: out = out @ U.T
    if a.subnorm: out = rms(out)
    return out

def block(l, x, B):
    h = rms(x, P[f"h{l}.ln1"])
    q, kk, v = (h @ P[f"h{l}.qkv"]).split(d, -1)
    q, kk, v = (t.view(B, T, NH, d // NH).transpose(1, 2) for t in (q, kk, v))
    y = F.scaled_dot_product_attention(rope(q), rope(kk), v, is_causal=True)
    y = y.transpose(1, 2).reshape(B, T, d)
    if a.attn_full and sub and l < L - 1:
        full = y @ P[f"h{l}.attn_proj"]
        inner = rms(full) if a.subnorm else full       # what the MLP of this block reads
        sent = full @ U @ U.T                          # what joins the stream that is sent
        if a.subnorm: sent = rms(sent)
        h = rms(x + inner, P[f"h{l}.ln2"])
        m = F.relu(h @ P[f"h{l}.fc"]).square()
        return x + sent, m
    x = x + write(l, y, "attn_proj")
    h = rms(x, P[f"h{l}.ln2"])
    m = F.relu(h @ P[f"h{l}.fc"]).square()
    return x, m

def forward(ids, tgt, train_mode):
    B = ids.shape[0]
    E = Efix[ids]
    if sub: x = E + P["wte"][ids] @ U.T
    elif splitemb: x = (E if not a.no_efixed else 0) + P["wte"][ids]
    else: x = P["wte"][ids]
    ebase = E if (splitemb and not a.no_efixed) else torch.zeros_like(E)
    lift = None
    def side(l):  # what stage l adds to its input and takes out of its output (never sent)
        e = P[f"h{l}.semb"][ids]
        if a.prev_emb: e = e + F.pad(P[f"h{l}.pemb"][ids[:, :-1]], (0, 0, 1, 0))
        return e
    for l in range(L):
        if a.variant == "sublift" and l > 0:
            c = (x - E) @ U
            lift = F.relu(c @ P[f"lift{l}.up"])
            x = x + lift
        if a.stage_emb: x = x + side(l)
        x, m = block(l, x, B)
        if a.variant == "resbm" and l < L - 1:
            c = x[..., :k] + m @ P[f"rb{l}.down"]
            c = Q.apply(c, a.quant)
            x = F.pad(c, (0, d - k)) + F.relu(c @ P[f"rb{l}.up"]) + (E if a.ids else 0)
            continue
        if lift is not None and l < L - 1:
            x = x - lift  # the stage's own lift is not sent: the next stage lifts its input itself
        x = x + write(l, m, "fc_proj")
        if l == L - 1: break
        if a.stage_emb: x = x - side(l)  # the stage's own tables are not sent
        if sub and a.quant != "none":
            c = Q.apply((x - E) @ U, a.quant)
            x = E + c @ U.T
        elif l in A:
            r = x - ebase
            if a.variant == "pca" and train_mode:
                with torch.no_grad(): pca_cov[l].mul_(0.9).add_(0.1 * (r.reshape(-1, d).T @ r.reshape(-1, d)) / r.numel() * d)
            c = Q.apply(r @ A[l], a.quant)
            x = ebase + c @ A[l].T
        elif a.variant == "dense" and a.quant != "none":
            x = Q.apply(x, a.quant)
    x = rms(x, P["lnf"])
    return F.cross_entropy((x @ P["lm_head"]).view(-1, V), tgt.reshape(-1))

decay = [p for n, p in P.items() if p.dim() >= 2]
nodecay = [p for n, p in P.items() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                        lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
extra = ([U] if a.variant == "adaptive" else []) + ([A[l] for l in A] if a.variant == "proj" else [])
uopt = torch.optim.Adam(extra, lr=a.ulr or a.lr, betas=(0.9, 0.95)) if extra else None
allp = list(P.values()) + extra

def lr_at(s):
    warm = max(1, a.steps // 10); mn = a.lr / 10
    if s < warm: return a.lr * (s + 1) / warm
    p = min(1.0, (s - warm) / max(1, a.steps - warm))
    return mn + 0.5 * (1 + math.cos(math.pi * p)) * (a.lr - mn)

def evaluate():
    with torch.no_grad():
        tot = 0.0
        for i in range(0, tune.numel(), 32):
            ids, tg = batch_of(val, tune[i:i + 32]); tot += forward(ids, tg, False).item() * ids.shape[0]
        return tot / tune.numel()

def retract(M):
    with torch.no_grad():
        q, r = torch.linalg.qr(M.double()); M.copy_((q * torch.sign(torch.diagonal(r))).float())

nparam = sum(p.numel() for p in P.values())
t0 = time.time(); hist = []
perm = wins[torch.randperm(wins.numel(), generator=gen)]; pos = 0
for s in range(a.steps):
    if pos + a.B > perm.numel(): perm = wins[torch.randperm(wins.numel(), generator=gen)]; pos = 0
    ids, tg = batch_of(train, perm[pos:pos + a.B]); pos += a.B
    for gp in opt.param_groups: gp["lr"] = lr_at(s)
    if uopt:
        for gp in uopt.param_groups: gp["lr"] = lr_at(s) * (a.ulr or a.lr) / a.lr
    loss = forward(ids, tg, True)
    opt.zero_grad(set_to_none=True)
    if uopt: uopt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(allp, 1.0)
    if uopt and s % a.every == 0:
        with torch.no_grad():  # Grassmann tangent projection of the gradient
            for M in extra: M.grad -= M @ (M.T @ M.grad)
        uopt.step()
        for M in extra: retract(M)
    opt.step()
    if a.variant == "pca" and (s + 1) % a.every == 0 and s > 0:
        for l in A:
            ev, vec = torch.linalg.eigh(pca_cov[l].double())
            A[l] = vec[:, -k:].flip(-1).float().contiguous()
    if (s + 1) % a.eval_every == 0 or s + 1 == a.steps:
        v = evaluate(); hist.append((s + 1, v))
        print(f"step {s+1} loss {loss.item():.4f} tune-val {v:.4f} ({time.time()-t0:.0f}s)", flush=True)
tag = " ".join(f"--{kk}={vv}" for kk, vv in vars(a).items() if vv not in (None, False) and kk not in ("threads", "data", "eval_every"))
print(json.dumps({"variant": tag, "params": nparam, "final": hist[-1][1], "hist": hist, "secs": time.time() - t0}))
