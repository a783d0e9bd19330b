"""Golden values for `tests/tests/golden_masked_xent.rs`: masked softmax and masked cross-entropy
(hard and finite mask values, label smoothing over the allowed classes, z-loss, focal weight,
ignore_index, per-token unreduced losses), from JAX in f64.

Definitions (kernels/src/masked_xent/mod.rs states the same ones), per row with logits x,
allowed classes `allowed`, mask value m, target t:

    z      = where(allowed, x, m)              (m is a constant: no gradient reaches masked x)
    lse    = logsumexp(z);  logp = z - lse
    q      = (1 - eps) * onehot(t) + eps * allowed / sum(allowed)
    ce     = -sum_c q_c * logp_c               (terms with q_c = 0 are left out, so a hard
                                                mask's -inf never meets a 0)
    loss   = (1 - exp(logp_t)) ** gamma * ce + lam * lse ** 2
    rows whose target is ignore_index: loss 0, not counted in the mean

This is written from the definition (the sum over q, jax.grad for the gradient), not from the
Rust code's closed form and fused backward coefficients, so agreement checks both.

Inputs come from sin/cos formulas (no RNG) and are written to the JSON; every float is written
with Python's shortest round-trip repr. JSON has no infinities, so a hard mask value is written
as null.

Regenerate, from the repository root (a throwaway venv; nothing is installed system-wide):

    python3 -m venv /tmp/venv-jax3 && /tmp/venv-jax3/bin/pip install 'jax[cpu]==0.10.2' && /tmp/venv-jax3/bin/python tests/golden/masked_xent_golden.py
"""

import json
import math
import pathlib

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after enabling x64, so arrays default to f64)

ROWS, CLASSES = 6, 11
IGNORE = -100
OUT = pathlib.Path(__file__).with_name("masked_xent_golden.json")

LOGITS = jnp.array(
    [[2.0 * math.sin(0.9 * i + 0.37 * j + 0.1) + 0.3 * math.cos(1.7 * j) for j in range(CLASSES)] for i in range(ROWS)],
    dtype=jnp.float64,
)
# Per-row allowed sets: a task block, a scattered set, everything, a pair, and two more blocks.
ALLOWED = jnp.array(
    [[(i * 5 + j * 3) % 7 < 4 or j == (2 * i + 1) % CLASSES for j in range(CLASSES)] for i in range(ROWS)]
)
TARGETS = jnp.array([(2 * i + 1) % CLASSES for i in range(ROWS)], dtype=jnp.int64)  # always allowed
TARGETS_IGNORE = TARGETS.at[2].set(IGNORE).at[5].set(IGNORE)
SEED = jnp.array([math.cos(1.3 * i + 0.2) + 0.1 for i in range(ROWS)], dtype=jnp.float64)
# Softmax outputs sum to 1 per row, so a seed constant along a row would project to a constant.
SEED_ROWS = jnp.array([[math.cos(1.3 * i + 0.7 * j + 0.2) for j in range(CLASSES)] for i in range(ROWS)], dtype=jnp.float64)


def per_row(x, allowed, targets, m, eps, lam, gamma):
    z = jnp.where(allowed, x, m)
    lse = jax.nn.logsumexp(z, axis=-1)
    logp = z - lse[:, None]
    t = jnp.clip(targets, 0, CLASSES - 1)  # ignored rows are zeroed below
    onehot = jax.nn.one_hot(t, CLASSES, dtype=jnp.float64)
    q = (1.0 - eps) * onehot + eps * allowed / jnp.sum(allowed, axis=-1, keepdims=True)
    ce = -jnp.sum(jnp.where(q > 0, q * jnp.where(q > 0, logp, 0.0), 0.0), axis=-1)
    p_t = jnp.exp(jnp.sum(onehot * jnp.where(allowed, logp, 0.0), axis=-1))
    loss = (1.0 - p_t) ** gamma * ce + lam * lse**2
    valid = targets != IGNORE
    return jnp.where(valid, loss, 0.0), lse, valid


CASES = [
    # name, masked, m (None = -inf), eps, lam, gamma, ignore, reduction
    ("hard mask, per-token", True, None, 0.0, 0.0, 0.0, False, "none"),
    ("finite mask value", True, -2.5, 0.0, 0.0, 0.0, False, "mean"),
    ("finite mask value above the logits", True, 3.0, 0.0, 0.0, 0.0, False, "sum"),
    ("z-loss", False, None, 0.0, 1e-2, 0.0, False, "mean"),
    ("z-loss with hard mask", True, None, 0.0, 1e-4, 0.0, False, "none"),
    ("label smoothing over allowed classes", True, None, 0.1, 0.0, 0.0, False, "sum"),
    ("label smoothing, no mask", False, None, 0.2, 0.0, 0.0, False, "mean"),
    ("ignore_index, per-token", False, None, 0.0, 0.0, 0.0, True, "none"),
    ("ignore_index, mean", True, -1.0, 0.0, 0.0, 0.0, True, "mean"),
    ("focal", True, None, 0.0, 0.0, 2.0, False, "mean"),
    ("everything", True, 0.5, 0.15, 1e-3, 1.5, True, "mean"),
]


def encode(a):
    a = jnp.asarray(a)
    if a.dtype == jnp.bool_:
        return {"shape": list(a.shape), "values": [bool(v) for v in a.reshape(-1)]}
    assert a.dtype in (jnp.float64, jnp.int64), a.dtype
    values = [v.item() for v in a.reshape(-1)]
    assert all(math.isfinite(v) for v in values), values
    return {"shape": list(a.shape), "values": values}


def xent_case(name, masked, m, eps, lam, gamma, ignore, reduction):
    allowed = ALLOWED if masked else jnp.ones_like(ALLOWED)
    mv = -jnp.inf if m is None else m
    targets = TARGETS_IGNORE if ignore else TARGETS

    def reduced(x):
        loss, lse, valid = per_row(x, allowed, targets, mv, eps, lam, gamma)
        if reduction == "none":
            return jnp.sum(SEED * loss), (loss, lse)
        if reduction == "sum":
            return jnp.sum(loss), (jnp.sum(loss), lse)
        return jnp.sum(loss) / jnp.sum(valid), (jnp.sum(loss) / jnp.sum(valid), lse)

    grad, (loss, lse) = jax.grad(reduced, has_aux=True)(LOGITS)
    return {
        "name": name,
        "masked": masked,
        "mask_value": m,
        "label_smoothing": eps,
        "z_loss": lam,
        "focal_gamma": gamma,
        "ignore_index": IGNORE if ignore else None,
        "reduction": reduction,
        "loss": encode(loss),
        "lse": encode(lse),
        "grad": encode(grad),
    }


def softmax_case(log, m):
    mv = -jnp.inf if m is None else m

    def f(x):
        z = jnp.where(ALLOWED, x, mv)
        y = jax.nn.log_softmax(z, axis=-1) if log else jax.nn.softmax(z, axis=-1)
        # With a hard mask the log-softmax is -inf at masked entries and so is this sum; its
        # gradient is still the well-defined vector-Jacobian product (the m -> -inf limit of
        # the finite-m one: d(m - lse)/dx_c = -p_c), which is what is stored.
        return jnp.sum(y * SEED_ROWS), y

    grad, y = jax.grad(f, has_aux=True)(LOGITS)
    y = jnp.where(jnp.isfinite(y), y, 0.0)  # -inf (hard log-softmax) stored as 0, see "log"
    return {"log": log, "mask_value": m, "y": encode(y), "grad": encode(grad)}


def main():
    doc = {
        "jax_version": jax.__version__,
        "ignore_index": IGNORE,
        "logits": encode(LOGITS),
        "allowed": encode(ALLOWED),
        "targets": encode(TARGETS),
        "targets_ignore": encode(TARGETS_IGNORE),
        "seed": encode(SEED),
        "seed_rows": encode(SEED_ROWS),
        "cross_entropy": [xent_case(*c) for c in CASES],
        "softmax": [softmax_case(False, None), softmax_case(False, -2.5), softmax_case(True, -2.5), softmax_case(True, None)],
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({len(doc['cross_entropy'])} cross-entropy cases, jax {jax.__version__})")


if __name__ == "__main__":
    main()
