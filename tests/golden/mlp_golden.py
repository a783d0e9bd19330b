"""Golden values for `tests/tests/golden_mlp.rs`: a small MLP's loss and gradients, from JAX in f64.

Network (PyTorch conventions, Linear weights stored [out, in], y = x @ W.T + b):

    x [8, 6] -> Linear(6, 16) -> LayerNorm(16, gain and bias, eps 1e-5, biased variance)
             -> GELU (exact erf form) -> Linear(16, 5)
             -> softmax cross-entropy with integer targets, mean over the 8 rows

JAX is an independent implementation (XLA kernels, its own autodiff), so agreement checks the
Rust ops' forward math and every backward formula at once.

Inputs and parameters come from closed-form sin/cos formulas (no RNG), and are also written to
the JSON, which the Rust test reads, so it never has to reproduce them. Every float is written
with Python's shortest round-trip repr, so the JSON holds the exact f64 values.

Regenerate, from the repository root (a throwaway venv; nothing is installed system-wide):

    python3 -m venv /tmp/venv-jax && /tmp/venv-jax/bin/pip install 'jax[cpu]==0.10.2' && /tmp/venv-jax/bin/python tests/golden/mlp_golden.py
"""

import json
import math
import pathlib

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after enabling x64, so arrays default to f64)

BATCH, IN, HIDDEN, CLASSES = 8, 6, 16, 5
EPS = 1e-5
OUT = pathlib.Path(__file__).with_name("mlp_golden.json")


def table(rows, cols, f):
    return jnp.array([[f(i, j) for j in range(cols)] for i in range(rows)], dtype=jnp.float64)


def vector(n, f):
    return jnp.array([f(i) for i in range(n)], dtype=jnp.float64)


def inputs():
    """Deterministic inputs and parameters, scaled like a standard initialization (1/sqrt(fan_in))."""
    return {
        "x": table(BATCH, IN, lambda i, j: 1.5 * math.sin(0.7 * i + 1.3 * j + 0.2)),
        "w1": table(HIDDEN, IN, lambda o, i: math.cos(0.37 * o - 0.53 * i + 0.1) / math.sqrt(IN)),
        "b1": vector(HIDDEN, lambda o: 0.1 * math.sin(o + 0.5)),
        "ln_weight": vector(HIDDEN, lambda o: 1.0 + 0.2 * math.cos(0.9 * o)),
        "ln_bias": vector(HIDDEN, lambda o: 0.05 * o - 0.4),
        "w2": table(CLASSES, HIDDEN, lambda o, i: math.sin(0.29 * o + 0.61 * i - 0.3) / math.sqrt(HIDDEN)),
        "b2": vector(CLASSES, lambda o: 0.1 * math.cos(1.7 * o)),
    }


TARGETS = jnp.array([(3 * i + 1) % CLASSES for i in range(BATCH)], dtype=jnp.int64)


def layer_norm(h, weight, bias):
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.mean((h - mean) ** 2, axis=-1, keepdims=True)  # biased, as torch.nn.LayerNorm
    return (h - mean) / jnp.sqrt(var + EPS) * weight + bias


def loss_fn(p):
    h = p["x"] @ p["w1"].T + p["b1"]
    h = layer_norm(h, p["ln_weight"], p["ln_bias"])
    h = jax.nn.gelu(h, approximate=False)
    logits = h @ p["w2"].T + p["b2"]
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(log_probs[jnp.arange(BATCH), TARGETS])


def encode(a):
    a = jnp.asarray(a)
    assert a.dtype in (jnp.float64, jnp.int64), a.dtype
    return {"shape": list(a.shape), "values": [v.item() for v in a.reshape(-1)]}


def main():
    params = inputs()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    doc = {
        "description": (
            "x[8,6] -> Linear(6,16) -> LayerNorm(16, eps) -> GELU(erf) -> Linear(16,5) -> "
            "cross_entropy(mean); Linear weights are [out, in], y = x @ W.T + b"
        ),
        "generator": "tests/golden/mlp_golden.py",
        "jax_version": jax.__version__,
        "dtype": "f64",
        "eps": EPS,
        "inputs": {name: encode(v) for name, v in params.items()},
        "targets": encode(TARGETS),
        "loss": loss.item(),
        "grads": {name: encode(g) for name, g in grads.items()},
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"jax {jax.__version__}: loss {loss.item()!r}; wrote {OUT}")


if __name__ == "__main__":
    main()
