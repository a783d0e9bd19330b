"""Golden values for `tests/tests/golden_attention.rs`: masked, grouped-query attention in f64 JAX.

For each case: out = softmax(scale * q k^T + bias, masked) v, the row log-sum-exp, and the
vector-Jacobian product with a fixed cotangent w (dq, dk, dv, and dbias where there is a bias).
Layouts as in the Rust op: q [B, H, nq, D], k and v [B, Hkv, nk, D], query head h using KV head
h // (H // Hkv). Masks (ANDed): causal bottom-right (j <= i + nk - nq), diagonal (j != i + nk - nq),
key padding (j < lengths[b]), a boolean mask (True = attend), an additive bias.

A row with no allowed key is defined as out = 0, lse = -inf, zero gradient (PyTorch and
jax.nn.dot_product_attention give NaN or an average there). The explicit formulas below encode
that; every row that is not fully masked is also checked against jax.nn.dot_product_attention
(XLA implementation) before anything is written, so the file agrees with JAX's own kernel.

Inputs come from sin/cos formulas (no RNG) and are written to the JSON, which the Rust test reads.
Non-finite values (the lse of fully masked rows) are written as the string "-inf".

Regenerate, from the repository root (a throwaway venv; nothing is installed system-wide):

    python3 -m venv /tmp/venv-jax2 && /tmp/venv-jax2/bin/pip install 'jax[cpu]==0.10.2' && /tmp/venv-jax2/bin/python tests/golden/attention_golden.py
"""

import json
import math
import pathlib

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after enabling x64)
import numpy as np  # noqa: E402

OUT = pathlib.Path(__file__).with_name("attention_golden.json")


def tensor(shape, seed):
    n = int(np.prod(shape))
    flat = [math.sin(0.37 * i + 1.1 * seed) + 0.5 * math.cos(0.11 * i * seed + 0.3) for i in range(n)]
    return jnp.array(flat, dtype=jnp.float64).reshape(shape)


def allowed_mask(b, h, nq, nk, causal, diagonal, lengths, bool_mask):
    i = jnp.arange(nq)[:, None]
    j = jnp.arange(nk)[None, :]
    pos = i + (nk - nq)
    ok = jnp.ones((b, h, nq, nk), dtype=bool)
    if causal:
        ok = ok & (j <= pos)
    if diagonal:
        ok = ok & (j != pos)
    if lengths is not None:
        ok = ok & (j[None, None] < jnp.array(lengths)[:, None, None, None])
    if bool_mask is not None:
        ok = ok & bool_mask
    return ok


def attention(q, k, v, bias, ok, scale):
    """Materialized attention with exact zeros for fully masked rows; returns (out, lse)."""
    group = q.shape[1] // k.shape[1]
    k = jnp.repeat(k, group, axis=1)
    v = jnp.repeat(v, group, axis=1)
    s = jnp.einsum("bhid,bhjd->bhij", q, k) * scale
    if bias is not None:
        s = s + bias
    s_safe = jnp.where(ok, s, 0.0)  # masked logits never enter exp, so no inf/NaN in gradients
    m = jnp.max(jnp.where(ok, s, -jnp.inf), axis=-1, keepdims=True)
    m_safe = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))
    e = jnp.where(ok, jnp.exp(s_safe - m_safe), 0.0)
    l = jnp.sum(e, axis=-1, keepdims=True)
    p = e / jnp.where(l > 0, l, 1.0)
    out = jnp.einsum("bhij,bhjd->bhid", p, v)
    lse = jnp.where(l[..., 0] > 0, m_safe[..., 0] + jnp.log(jnp.where(l[..., 0] > 0, l[..., 0], 1.0)), -jnp.inf)
    return out, lse


CASES = [
    # name, B, H, Hkv, nq, nk, D, causal, diagonal, lengths, bool mask, bias
    dict(name="causal_nq_gt_nk", b=2, h=2, hkv=2, nq=6, nk=4, d=8, causal=True),
    dict(name="key_padding", b=3, h=2, hkv=1, nq=4, nk=6, d=8, lengths=[6, 3, 0]),
    dict(name="diagonal", b=1, h=3, hkv=3, nq=5, nk=5, d=4, diagonal=True),
    dict(name="bool_and_bias", b=2, h=2, hkv=2, nq=4, nk=5, d=8, bool_mask=True, bias=True),
    dict(name="gqa_causal_padding", b=2, h=4, hkv=2, nq=5, nk=4, d=8, causal=True, lengths=[4, 2]),
]


def encode(a):
    a = np.asarray(a)
    values = [v if math.isfinite(v) else ("-inf" if v < 0 else "inf") for v in a.reshape(-1).tolist()]
    return {"shape": list(a.shape), "values": values}


def run(case):
    b, h, hkv, nq, nk, d = (case[key] for key in ("b", "h", "hkv", "nq", "nk", "d"))
    q = tensor((b, h, nq, d), 1) * 1.3
    k = tensor((b, hkv, nk, d), 2) * 1.3
    v = tensor((b, hkv, nk, d), 3)
    w = tensor((b, h, nq, d), 4)
    bool_mask = None
    if case.get("bool_mask"):
        # [B, 1, nq, nk], broadcast over heads; query row 1 of batch row 0 fully masked.
        bm = np.array([[(math.sin(1.7 * (bb * nq * nk + i * nk + j)) > -0.5) for j in range(nk)] for bb in range(b) for i in range(nq)])
        bm = bm.reshape(b, 1, nq, nk)
        bm[0, 0, 1, :] = False
        bool_mask = jnp.array(bm)
    bias = tensor((1, h, nq, nk), 5) if case.get("bias") else None
    ok = allowed_mask(b, h, nq, nk, case.get("causal", False), case.get("diagonal", False), case.get("lengths"), bool_mask)
    scale = 1.0 / math.sqrt(d)

    def f(q, k, v, bias):
        return attention(q, k, v, bias, ok, scale)[0]

    out, lse = attention(q, k, v, bias, ok, scale)
    _, vjp = jax.vjp(f, q, k, v, bias)
    dq, dk, dv, dbias = vjp(w)

    # Cross-check against JAX's own attention on every row that has an allowed key. Its XLA path
    # computes the softmax in f32 even for f64 inputs (observed error ~1e-7), hence 1e-6 here; the
    # golden values themselves are the f64 formulas above.
    ref = jax.nn.dot_product_attention(
        jnp.transpose(q, (0, 2, 1, 3)),
        jnp.transpose(k, (0, 2, 1, 3)),
        jnp.transpose(v, (0, 2, 1, 3)),
        bias=bias,
        mask=ok,
        scale=scale,
        implementation="xla",
    )
    ref = jnp.transpose(ref, (0, 2, 1, 3))
    live = jnp.any(ok, axis=-1)
    err = float(jnp.max(jnp.where(live[..., None], jnp.abs(ref - out), 0.0)))
    assert err < 1e-6, (case["name"], err)
    assert not bool(jnp.all(live)) or case["name"] == "diagonal", f"{case['name']} should have a fully masked row"
    assert bool(jnp.all(jnp.where(live[..., None], True, (out == 0) & (dq == 0)))), case["name"]

    entry = {
        "name": case["name"],
        "causal": case.get("causal", False),
        "diagonal": case.get("diagonal", False),
        "lengths": case.get("lengths"),
        "scale": scale,
        "q": encode(q),
        "k": encode(k),
        "v": encode(v),
        "w": encode(w),
        "out": encode(out),
        "lse": encode(lse),
        "dq": encode(dq),
        "dk": encode(dk),
        "dv": encode(dv),
    }
    if bool_mask is not None:
        entry["bool_mask"] = {"shape": list(bool_mask.shape), "values": [int(x) for x in np.asarray(bool_mask).reshape(-1)]}
    if bias is not None:
        entry["bias"] = encode(bias)
        entry["dbias"] = encode(dbias)
    return entry


def main():
    data = {
        "jax_version": jax.__version__,
        "generator": "tests/golden/attention_golden.py",
        "cases": [run(c) for c in CASES],
    }
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({len(data['cases'])} cases, JAX {jax.__version__})")


if __name__ == "__main__":
    main()
