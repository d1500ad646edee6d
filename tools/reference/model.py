"""The protomodel GPT in PyTorch, tensor for tensor: same parameter names, shapes (weights
stored (in, out), y = x @ W), RMSNorm with gain, RoPE (rotate-half), ReLU² MLP, untied head.
Dev-only: used to make the parity fixture and to benchmark against PyTorch eager."""
import math
import torch
import torch.nn.functional as F


def param_layout(V, C, L, H):
    """Names and shapes in protomodel's ParamLayout order (whole model, one stage)."""
    out = [("wte", (V, C))]
    for l in range(L):
        out += [(f"h{l}.ln1", (C,)), (f"h{l}.qkv", (C, 3 * C)), (f"h{l}.attn_proj", (C, C)),
                (f"h{l}.ln2", (C,)), (f"h{l}.fc", (C, H)), (f"h{l}.fc_proj", (H, C))]
    out += [("lnf", (C,)), ("lm_head", (C, V))]
    return out


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(T, hs, base, dtype):
    half = hs // 2
    inv = base ** (-2 * torch.arange(half, dtype=torch.float64) / hs)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def rope(x, cos, sin):  # x (B, NH, T, hs)
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def forward(P, ids, targets, cfg, use_sdpa=False):
    """Returns (logits (B,T,V), mean loss)."""
    V, T, L, NH, C, eps = cfg["V"], cfg["T"], cfg["L"], cfg["NH"], cfg["C"], cfg["eps"]
    B = ids.shape[0]
    hs = C // NH
    cos, sin = cfg["rope"]
    x = P["wte"][ids]
    for l in range(L):
        h = rmsnorm(x, P[f"h{l}.ln1"], eps)
        q, k, v = (h @ P[f"h{l}.qkv"]).split(C, dim=-1)
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            y = att @ v
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + y @ P[f"h{l}.attn_proj"]
        h = rmsnorm(x, P[f"h{l}.ln2"], eps)
        x = x + F.relu(h @ P[f"h{l}.fc"]).square() @ P[f"h{l}.fc_proj"]
    x = rmsnorm(x, P["lnf"], eps)
    logits = x @ P["lm_head"]
    loss = F.cross_entropy(logits.view(-1, V), targets.view(-1))
    return logits, loss


def init_params(layout, L, std, dtype, gen):
    P = {}
    for name, shape in layout:
        if len(shape) == 1:
            P[name] = torch.ones(shape, dtype=dtype)
        else:
            s = std / math.sqrt(2 * L) if name.endswith("proj") else std
            P[name] = (torch.randn(shape, generator=gen, dtype=torch.float64) * s).to(dtype)
        P[name].requires_grad_(True)
    return P


def lr_at(step, max_lr, min_lr, warmup, total):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def make_optimizer(P, lr, betas, eps, wd):
    decay = [p for p in P.values() if p.dim() >= 2]
    no_decay = [p for p in P.values() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps, foreach=False)
