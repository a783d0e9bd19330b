#!/usr/bin/env python3
"""Reference timings for `cargo xtask bench` (bench/src/report/reference.rs).

Reads {"device": "cpu" | "cuda:N", "plan": {...}, "cases": [...]} as JSON on stdin and prints
{"library": ..., "results": {"<id>": {"times": [seconds, ...]} | {"skipped": "why"}}} on stdout.
numpy on "cpu", PyTorch on "cuda:N". Each case names an op and its sizes; inputs are standard
normals (never zeros), `copies` sets rotated like ours, timed call by call after warm-up, with a
CUDA synchronize before each clock read. Progress goes to stderr.

Run by hand: echo '{"device":"cpu","plan":{},"cases":[{"id":0,"op":"exp","shapes":[[1048576]],
"dtype":"float32"}]}' | python3 bench/reference/reference.py
"""

import json
import math
import sys
import time


def numpy_ops(np):
    def gelu(x):
        try:
            from scipy.special import erf
        except ImportError:
            raise Skip("numpy has no erf (install scipy for this row)")
        return lambda: 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))

    def softmax(x, log=False):
        def f():
            z = x - x.max(axis=-1, keepdims=True)
            if log:
                return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
            e = np.exp(z)
            return e / e.sum(axis=-1, keepdims=True)
        return f

    def layer_norm(x, w, b):
        def f():
            mu = x.mean(axis=-1, keepdims=True)
            var = x.var(axis=-1, keepdims=True)
            return (x - mu) / np.sqrt(var + 1e-5) * w + b
        return f

    def rms_norm(x, w):
        return lambda: x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + 1e-6) * w

    def xent(c, rng):
        if c.get("dtype") == "bfloat16":
            raise Skip("numpy has no bfloat16")
        rows, classes, allowed = c["rows"], c["classes"], c.get("allowed")
        x = rng.standard_normal((rows, classes), dtype=np.float32)
        t = (np.arange(rows) * 7919) % (allowed or classes)
        idx = np.arange(rows)

        def f():
            # numpy: the allowed prefix as a view (cheaper than np.where; the same values).
            z = x[:, :allowed] if allowed else x
            m = z.max(axis=-1, keepdims=True)
            e = np.exp(z - m)
            s = e.sum(axis=-1, keepdims=True)
            loss = (np.log(s[:, 0]) + m[:, 0] - z[idx, t]).mean()
            if c["backward"]:
                g = np.zeros_like(x)
                gz = e / s
                gz[idx, t] -= 1.0
                g[:, : z.shape[1]] = gz / rows
                return g
            return loss
        return f

    def optim(c, rng):
        # One array per tensor of the group ("sizes"), or one of n; each updated in place.
        n, op = c["n"], c["op"]
        sizes = c.get("sizes", [n])
        ps = [rng.standard_normal(k, dtype=np.float32) for k in sizes]
        gs = [rng.standard_normal(k, dtype=np.float32) for k in sizes]
        ms, vs = [np.zeros(k, np.float32) for k in sizes], [np.zeros(k, np.float32) for k in sizes]
        lr, b1, b2, eps, wd = 1e-3, 0.9, 0.999, 1e-8, 1e-2

        # In place (`+=` on an array updates it), as an optimizer would.
        def step(p, g, m, v):
            if op == "adamw":
                np.multiply(p, 1 - lr * wd, out=p)
                np.multiply(m, b1, out=m)
                m += (1 - b1) * g
                np.multiply(v, b2, out=v)
                v += (1 - b2) * g * g
                p -= lr / (1 - b1) * m / (np.sqrt(v / (1 - b2)) + eps)
            elif op == "lion":
                c_ = b1 * m + (1 - b1) * g
                p -= 1e-4 * np.sign(c_)
                np.multiply(m, 0.99, out=m)
                m += 0.01 * g
            else:  # sgd_nesterov
                np.multiply(m, 0.9, out=m)
                m += g
                p -= 1e-2 * (g + 0.9 * m)

        def f():
            for t in zip(ps, gs, ms, vs):
                step(*t)
        return f

    def cvx(c, rng):
        n, d, p, op = c["n"], c["d"], c["p"], c["op"]
        x, v = rng.uniform(-1, 1, (n, d)), rng.uniform(-1, 1, (p, d))
        z = rng.uniform(-1, 1, (p, n))
        mask = (z > 0).astype(np.float64)
        sign, r = 2 * mask - 1, rng.uniform(-1, 1, n)
        return {
            "cvx_masked_forward": lambda: ((v @ x.T) * mask).sum(axis=0),
            "cvx_masked_backward": lambda: (mask * r) @ x,
            "cvx_sign_forward": lambda: sign * (v @ x.T),
            "cvx_sign_backward": lambda: (sign * z) @ x,
            "group_soft_threshold": lambda: v * np.maximum(0, 1 - 1e-6 / np.linalg.norm(v, axis=1))[:, None],
        }[op]

    def make(c, seed):
        rng = np.random.default_rng(seed)
        op = c["op"]
        if op == "xent":
            return xent(c, rng)
        if op in ("adamw", "lion", "sgd_nesterov"):
            return optim(c, rng)
        if op.startswith("cvx_") or op == "group_soft_threshold":
            return cvx(c, rng)
        if op == "embedding":
            ids = (np.arange(c["ids"], dtype=np.int64) * 7919 + seed) % c["vocab"]
            w = rng.standard_normal((c["vocab"], c["dim"])).astype(np.float32)
            return lambda: np.take(w, ids, axis=0)
        dt = np.dtype(c["dtype"])
        a = [rng.standard_normal(s).astype(dt) for s in c["shapes"]]
        if op == "dropout":
            # numpy has no fused dropout: draw the uniforms, compare, scale (what a user writes).
            p = c["p"]
            return lambda: a[0] * (rng.random(a[0].shape, dtype=np.float32) >= p) * np.float32(1 / (1 - p))
        simple = {
            "add": lambda: a[0] + a[1],
            "mul": lambda: a[0] * a[1],
            "mul_scalar": lambda: a[0] * dt.type(1.5),
            "exp": lambda: np.exp(a[0]),
            "sum": lambda: a[0].sum(axis=c.get("axis")),
            "max": lambda: a[0].max(axis=c.get("axis")),
            "matmul": lambda: a[0] @ a[1],
        }
        if op in simple:
            return simple[op]
        if op == "gelu":
            return gelu(a[0])
        if op in ("softmax", "log_softmax"):
            return softmax(a[0], log=op == "log_softmax")
        if op == "layer_norm":
            return layer_norm(*a)
        if op == "rms_norm":
            return rms_norm(*a)
        raise Skip(f"no numpy version of {op!r}")

    return make, lambda: None, f"numpy {np.__version__}"


def torch_ops(torch, device):
    F = torch.nn.functional

    def make(c, seed):
        g = torch.Generator(device=device).manual_seed(seed)
        op = c["op"]
        dt = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}[
            c.get("dtype", "float32")
        ]
        randn = lambda *s: torch.randn(*s, generator=g, device=device, dtype=dt)  # noqa: E731
        if op == "xent":
            rows, classes, allowed = c["rows"], c["classes"], c.get("allowed")
            x = randn(rows, classes).requires_grad_(c["backward"])
            t = (torch.arange(rows, device=device) * 7919) % (allowed or classes)
            # What a PyTorch user writes for a class mask (ours: a range mask keeping the first
            # `allowed` classes): masked_fill with -inf, then F.cross_entropy.
            masked = torch.arange(classes, device=device) >= allowed if allowed else None

            def f():
                x.grad = None  # each call computes a fresh gradient, as ours (no accumulation)
                z = x.masked_fill(masked, float("-inf")) if allowed else x
                loss = F.cross_entropy(z, t)
                if c["backward"]:
                    loss.backward()
            return f
        if op in ("adamw", "lion", "sgd_nesterov"):
            if op == "lion":
                raise Skip("PyTorch has no Lion")
            # The fused AdamW (one multi-tensor launch per group, as ours) over the same tensors.
            ps = [torch.nn.Parameter(randn(k)) for k in c.get("sizes", [c["n"]])]
            for p in ps:
                p.grad = randn(p.numel())
            opt = (torch.optim.AdamW(ps, lr=1e-3, fused=True) if op == "adamw"
                   else torch.optim.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True, foreach=True))
            return opt.step
        if op.startswith("cvx_") or op == "group_soft_threshold":
            raise Skip("no PyTorch version of the cvx primitives")
        if op == "attention":
            return sdpa(c, randn)
        if op == "embedding":
            ids = (torch.arange(c["ids"], device=device) * 7919 + seed) % c["vocab"]
            w = randn(c["vocab"], c["dim"])
            return lambda: F.embedding(ids, w)
        a = [randn(*s) for s in c["shapes"]]
        if op == "dropout":
            return lambda: F.dropout(a[0], c["p"], training=True)
        table = {
            "add": lambda: a[0] + a[1],
            "mul": lambda: a[0] * a[1],
            "mul_scalar": lambda: a[0] * 1.5,
            "exp": lambda: torch.exp(a[0]),
            "gelu": lambda: F.gelu(a[0]),
            "sum": lambda: a[0].sum(dim=c.get("axis")),
            "max": lambda: a[0].amax(dim=c.get("axis")),
            "matmul": lambda: a[0] @ a[1],
            "softmax": lambda: torch.softmax(a[0], -1),
            "log_softmax": lambda: torch.log_softmax(a[0], -1),
            "layer_norm": lambda: F.layer_norm(a[0], a[1].shape, a[1], a[2], 1e-5),
            "rms_norm": lambda: F.rms_norm(a[0], a[1].shape, a[1], 1e-6),
        }
        if op not in table:
            raise Skip(f"no PyTorch version of {op!r}")
        return table[op]

    def sdpa(c, randn):
        # The bench's attention rows: [B, H, n, D] f32, default scale; causal with nq = nk (so
        # SDPA's top-left is_causal equals our bottom-right alignment); the boolean row's mask is
        # the bench's [n, n] pattern (True = attend), broadcast over batch and heads.
        shape = (c["batch"], c["heads"], c["n"], c["d"])
        q, k, v = (randn(*shape).requires_grad_(c["backward"]) for _ in range(3))
        dout = randn(*shape)
        mask = None
        if c.get("bool_mask"):
            n = c["n"]
            idx = torch.arange(n * n, device=device)
            mask = ((idx * 7919 + 13) % 5 != 0).reshape(n, n)

        def f():
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=c["causal"])
            if c["backward"]:
                o.backward(dout)
        return f

    sync = lambda: torch.cuda.synchronize(device)  # noqa: E731
    return make, sync, f"torch {torch.__version__} on {torch.cuda.get_device_name(device)}"


class Skip(Exception):
    pass


def time_case(fns, sync, plan):
    i = 0
    for _ in range(plan.get("warmup", 2)):
        fns[i % len(fns)]()
        i += 1
    sync()
    times, spent = [], 0.0
    min_runs, max_runs, budget = plan.get("min_runs", 5), plan.get("max_runs", 50), plan.get("budget_s", 0.3)
    while len(times) < min_runs or (spent < budget and len(times) < max_runs):
        t0 = time.perf_counter()
        fns[i % len(fns)]()
        sync()
        dt = time.perf_counter() - t0
        i += 1
        spent += dt
        times.append(dt)
    return times


def main():
    req = json.load(sys.stdin)
    device = req.get("device", "cpu")
    if device == "cpu":
        import numpy as np
        make, sync, library = numpy_ops(np)
    else:
        import torch
        make, sync, library = torch_ops(torch, device)
    results = {}
    cases = req["cases"]
    for k, c in enumerate(cases):
        try:
            fns = [make(c, 1000 * j + 1) for j in range(max(1, c.get("copies", 1)))]
            times = time_case(fns, sync, req.get("plan", {}))
            results[str(c["id"])] = {"times": times}
            med = sorted(times)[len(times) // 2]
            print(f"reference: [{k + 1}/{len(cases)}] {c['op']} {med * 1e3:.3f} ms", file=sys.stderr)
        except Skip as e:
            results[str(c["id"])] = {"skipped": str(e)}
        except Exception as e:  # a failing case must not lose the others' times
            results[str(c["id"])] = {"skipped": f"{type(e).__name__}: {e}"}
    json.dump({"library": library, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
