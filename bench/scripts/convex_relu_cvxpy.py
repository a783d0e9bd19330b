"""cvxpy side of `cargo bench -p bench --bench convex_relu`: solves the problems the Rust bench
wrote (JSON: x, y, patterns, beta) with cvxpy's default open-source solver, and prints, per
problem and program (exact | gated), the optimal value and wall times (median of --repeats):
`total` = problem construction + canonicalization + solve, `solver` = the solver's own time.

Usage: python bench/scripts/convex_relu_cvxpy.py PROBLEMS.json [--repeats R]  (prints JSON)
Needs cvxpy (pinned with the golden script: cvxpy 1.9.3, numpy 2.4.6, clarabel 0.11.1).
"""

import json
import statistics
import sys
import time

import cvxpy as cp
import numpy as np


def build(p, program):
    n, d = p["n"], p["d"]
    x = np.array(p["x"]).reshape(n, d)
    y = np.array(p["y"])
    m = np.array(p["patterns"], dtype=float)  # P x n
    beta = p["beta"]
    if program == "gated":
        U = cp.Variable((d, m.shape[0]))
        yhat = cp.sum(cp.multiply(m.T, x @ U), axis=1)
        cost = cp.sum_squares(yhat - y) / 2 + beta * cp.sum(cp.norm(U, 2, axis=0))
        return cp.Problem(cp.Minimize(cost))
    V, W = cp.Variable((d, m.shape[0])), cp.Variable((d, m.shape[0]))
    yhat = cp.sum(cp.multiply(m.T, x @ (V - W)), axis=1)
    e = 2 * m.T - 1
    cost = cp.sum_squares(yhat - y) / 2 + beta * (cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0)))
    return cp.Problem(cp.Minimize(cost), [cp.multiply(e, x @ V) >= 0, cp.multiply(e, x @ W) >= 0])


def main():
    path = sys.argv[1]
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 3
    problems = json.load(open(path))
    out = []
    for p in problems:
        for program in p["programs"]:
            totals, solves, value, name = [], [], None, None
            for _ in range(repeats):
                t0 = time.perf_counter()
                prob = build(p, program)
                prob.solve()
                totals.append(time.perf_counter() - t0)
                solves.append(prob.solver_stats.solve_time or float("nan"))
                value, name = prob.value, prob.solver_stats.solver_name
            out.append({"name": p["name"], "program": program, "value": value, "solver": name,
                        "total_s": statistics.median(totals), "solver_s": statistics.median(solves)})
            print(f"cvxpy {p['name']} {program}: {value:.10g} in {out[-1]['total_s']:.3f}s", file=sys.stderr)
    print(json.dumps({"cvxpy_version": cp.__version__, "results": out}))


if __name__ == "__main__":
    main()
