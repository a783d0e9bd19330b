"""Golden optimal values for `algorithms/tests/convex_relu.rs`: convex two-layer ReLU programs
(Pilanci & Ergen 2020; the robust variant of Bai, Gautam & Sojoudi 2022) solved by cvxpy with its
default open-source solver (an interior-point method: Clarabel for these cone programs).

Each problem stores its data (closed-form sin/cos formulas, no RNG), the activation patterns
(exact enumeration of the hyperplane arrangement, done here in numpy independently of the Rust
code), beta, the loss, and the optimal values:

    exact    min  loss(sum_i D_i X (v_i - w_i), y) + beta sum_i (||v_i||_2 + ||w_i||_2)
             s.t. (2 D_i - I) X v_i >= 0,  (2 D_i - I) X w_i >= 0
    gated    min  loss(sum_i D_i X u_i, y) + beta sum_i ||u_i||_2        (no constraints)
    robust   min  sum_k (1 - y_k x_k^T c_k + eps ||c_k[feat]||_1)_+ + beta sum_i (||v_i|| + ||w_i||)
             s.t. (2 D_i - I) X v_i >= eps ||v_i[feat]||_1 (and w_i),   c_k = sum_i d_ik (v_i - w_i)

X carries a bias column (last); the robust perturbation acts on the feature columns only.
Losses: squared 1/2 ||yhat - y||^2; logistic sum log(1 + exp(-y yhat)) with y in {-1, +1};
hinge sum (1 - y yhat)_+.

Regenerate, from the repository root (a throwaway venv; nothing is installed system-wide):

    python3 -m venv /tmp/venv-cvx && /tmp/venv-cvx/bin/pip install 'cvxpy==1.9.3' 'numpy==2.4.6' 'clarabel==0.11.1' \
        && /tmp/venv-cvx/bin/python tests/golden/convex_relu_cvxpy.py
"""

import itertools
import json
import math
import pathlib
import time

import cvxpy as cp
import numpy as np

OUT = pathlib.Path(__file__).with_name("convex_relu_golden.json")


def features(n, f, a, b):
    """n x f inputs in [-1, 1] from a sin formula, plus the bias column."""
    x = np.array([[math.sin(a * k + b * j + 0.3 * j * j + 0.2) for j in range(f)] for k in range(n)])
    return np.hstack([x, np.ones((n, 1))])


def teacher(x):
    """A fixed width-3 ReLU teacher plus a small deterministic 'noise' term."""
    f = x.shape[1] - 1
    w = np.array([[math.cos(1.1 * j + 0.7 * i) for i in range(f + 1)] for j in range(3)])
    a = np.array([1.0, -0.8, 0.6])
    h = np.maximum(x @ w.T, 0.0)
    noise = 0.05 * np.sin(7.3 * np.arange(x.shape[0]) + 0.4)
    return h @ a + noise


def exact_patterns(x):
    """Every region of the central arrangement {h : x_k^T h = 0} (x of full column rank):
    around each extreme ray (the null line of d-1 independent rows), all 2^(d-1) sign choices
    on those rows. The all-zero pattern is dropped."""
    n, d = x.shape
    assert np.linalg.matrix_rank(x) == d
    seen = set()
    for rows in itertools.combinations(range(n), d - 1):
        a = x[list(rows)]
        if d > 1 and np.linalg.matrix_rank(a) < d - 1:
            continue
        h = np.linalg.svd(a if d > 1 else np.zeros((1, d)))[2][-1]
        xh = x @ h
        on_ray = np.abs(xh) <= 1e-9 * np.abs(x).max()
        for signs in itertools.product([-1.0, 1.0], repeat=d - 1):
            q = np.linalg.lstsq(a, np.array(signs), rcond=None)[0] if d > 1 else np.zeros(d)
            for s in (1.0, -1.0):
                val = np.where(on_ray, x @ q, s * xh)
                pat = tuple(int(v >= 0) for v in val)
                if any(pat):
                    seen.add(pat)
    return np.array(sorted(seen), dtype=float)  # P x n


def loss_expr(kind, yhat, y):
    if kind == "squared":
        return cp.sum_squares(yhat - y) / 2
    if kind == "logistic":
        return cp.sum(cp.logistic(-cp.multiply(y, yhat)))
    raise ValueError(kind)


def solve(prob):
    t0 = time.perf_counter()
    prob.solve()
    assert prob.status == cp.OPTIMAL, prob.status
    return prob.value, time.perf_counter() - t0, prob.solver_stats.solver_name


def solve_exact(x, y, m, beta, kind):
    n, d = x.shape
    V, W = cp.Variable((d, m.shape[0])), cp.Variable((d, m.shape[0]))
    yhat = cp.sum(cp.multiply(m.T, x @ (V - W)), axis=1)
    e = 2 * m.T - 1
    cost = loss_expr(kind, yhat, y) + beta * (cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0)))
    return solve(cp.Problem(cp.Minimize(cost), [cp.multiply(e, x @ V) >= 0, cp.multiply(e, x @ W) >= 0]))


def solve_gated(x, y, m, beta, kind):
    d = x.shape[1]
    U = cp.Variable((d, m.shape[0]))
    yhat = cp.sum(cp.multiply(m.T, x @ U), axis=1)
    return solve(cp.Problem(cp.Minimize(loss_expr(kind, yhat, y) + beta * cp.sum(cp.norm(U, 2, axis=0)))))


def solve_robust(x, y, m, beta, eps):
    n, d = x.shape
    f = d - 1  # perturbed columns: all but the bias
    p = m.shape[0]
    V, W = cp.Variable((d, p)), cp.Variable((d, p))
    c = (V - W) @ m  # d x n, column k = sum_i d_ik (v_i - w_i)
    yhat = cp.sum(cp.multiply(x.T, c), axis=0)
    worst = 1 - cp.multiply(y, yhat) + eps * cp.sum(cp.abs(c[:f, :]), axis=0)
    e = 2 * m.T - 1
    ones = np.ones((n, 1))
    cons = []
    for Z in (V, W):
        l1 = cp.reshape(cp.sum(cp.abs(Z[:f, :]), axis=0), (1, p), order="C")
        cons.append(cp.multiply(e, x @ Z) >= eps * (ones @ l1))
    cost = cp.sum(cp.pos(worst)) + beta * (cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0)))
    return solve(cp.Problem(cp.Minimize(cost), cons))


def problem(name, x, y, beta, kind, eps=None):
    m = exact_patterns(x)
    entry = {
        "name": name,
        "n": x.shape[0],
        "d": x.shape[1],
        "loss": kind,
        "beta": beta,
        "x": x.ravel().tolist(),
        "y": y.tolist(),
        "patterns": m.astype(int).tolist(),
    }
    if kind == "hinge":
        entry["eps"] = eps
        entry["robust"], entry["robust_seconds"], entry["solver"] = solve_robust(x, y, m, beta, eps)
        entry["robust_eps0"], _, _ = solve_robust(x, y, m, beta, 0.0)
    else:
        entry["exact"], entry["exact_seconds"], entry["solver"] = solve_exact(x, y, m, beta, kind)
        entry["gated"], _, _ = solve_gated(x, y, m, beta, kind)
    print(f"{name}: n={x.shape[0]} d={x.shape[1]} P={m.shape[0]} " + ", ".join(
        f"{k}={entry[k]:.10g}" for k in ("exact", "gated", "robust", "robust_eps0") if k in entry))
    return entry


def main():
    problems = []
    x = features(10, 1, 0.61, 0.0)
    problems.append(problem("reg_d2", x, teacher(x), 0.05, "squared"))
    x = features(12, 2, 0.83, 1.7)
    problems.append(problem("reg_d3", x, teacher(x), 0.1, "squared"))
    x = features(10, 2, 0.47, 2.3)
    y = np.where(teacher(x) - 0.3 >= 0, 1.0, -1.0)
    problems.append(problem("cls_d3", x, y, 0.05, "logistic"))
    x = features(10, 2, 0.71, 0.9)
    y = np.where(teacher(x) - 0.3 >= 0, 1.0, -1.0)
    problems.append(problem("robust_d3", x, y, 0.05, "hinge", eps=0.05))
    out = {
        "cvxpy_version": cp.__version__,
        "numpy_version": np.__version__,
        "problems": problems,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
