"""Golden trajectories for `nn/tests/golden_optim.rs`: optax optimizers on a least-squares problem, in f64.

Problem: f(x) = 1/(2m) * ||A x - b||^2 with A [m=8, n=5], b [8], x0 [5] from closed-form sin/cos
formulas (no RNG), gradient g = A^T (A x - b) / m. Each run takes STEPS steps from x0 and records x
after every step:

    adamw         optax.adamw(0.05, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1)
                  (library weight decay: p <- p - lr * (m_hat / (sqrt(v_hat) + eps) + wd * p))
    adamw_cosine  the same with optax.warmup_cosine_decay_schedule(0, 0.05, 5, STEPS, 0.005)
                  (linear warmup over 5 steps, then cosine to 0.1 * peak at STEPS)
    lion          optax.lion(0.02, b1=0.9, b2=0.99, weight_decay=0.5)
    sgd_nesterov  optax.sgd(0.05, momentum=0.9, nesterov=True)

optax evaluates the schedule in f32 even with x64 enabled; its values are written to the JSON too
(`adamw_cosine_lr`), so the Rust test replays exactly those and checks its own Cosine schedule
against them to f32 precision.

optax is an independent implementation (JAX, its own update order), so agreement checks the
formulas, the decay mode and the schedule at once. The JSON holds A, b, x0 and every
trajectory, each float in Python's shortest round-trip repr (exact f64).

Regenerate, from the repository root (a throwaway venv; nothing is installed system-wide):

    python3 -m venv /tmp/venv-optax && /tmp/venv-optax/bin/pip install 'optax==0.2.8' 'jax[cpu]==0.10.2' && /tmp/venv-optax/bin/python tests/golden/optim_trajectories.py
"""

import json
import math
import pathlib

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after enabling x64)
import optax  # noqa: E402

M, N, STEPS = 8, 5, 40
OUT = pathlib.Path(__file__).with_name("optim_trajectories.json")


def problem():
    a = [[math.sin(0.9 * i + 0.4 * j + 0.3) + 0.5 * math.cos(1.7 * j - 0.2 * i) for j in range(N)] for i in range(M)]
    b = [math.cos(0.6 * i + 0.1) for i in range(M)]
    x0 = [0.4 * math.sin(1.3 * j + 0.7) for j in range(N)]
    return a, b, x0


def gradient(a, b, x):
    return a.T @ (a @ x - b) / M


def run(tx, a, b, x0):
    x = x0
    state = tx.init(x)
    path = []
    for _ in range(STEPS):
        g = gradient(a, b, x)
        updates, state = tx.update(g, state, x)
        x = optax.apply_updates(x, updates)
        path.append([float(v) for v in x])
    return path


def main():
    a_list, b_list, x0_list = problem()
    a = jnp.array(a_list, dtype=jnp.float64)
    b = jnp.array(b_list, dtype=jnp.float64)
    x0 = jnp.array(x0_list, dtype=jnp.float64)
    cosine = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=0.05, warmup_steps=5, decay_steps=STEPS, end_value=0.005
    )
    runs = {
        "adamw": optax.adamw(0.05, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1),
        "adamw_cosine": optax.adamw(cosine, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1),
        "lion": optax.lion(0.02, b1=0.9, b2=0.99, weight_decay=0.5),
        "sgd_nesterov": optax.sgd(0.05, momentum=0.9, nesterov=True),
    }
    out = {
        "optax_version": optax.__version__,
        "jax_version": jax.__version__,
        "steps": STEPS,
        "a": a_list,
        "b": b_list,
        "x0": x0_list,
        "trajectories": {name: run(tx, a, b, x0) for name, tx in runs.items()},
        # optax evaluates schedules in f32 (even with x64 on): the values it used, so the Rust
        # test can replay them exactly and check its own schedule against them separately.
        "adamw_cosine_lr": [float(cosine(jnp.asarray(t, dtype=jnp.int32))) for t in range(STEPS)],
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
