"""Independent reference WALS (test-only): dense, float64, exact per-row Cholesky.

Written from docs/definitions.md alone, sharing no code with ``mfsoftmax.models.wals``:

    min  sum_{Omega} w_ij (1 - <U_i,V_j>)^2 + w0 sum_{not Omega} <U_i,V_j>^2 + lambda (|U|^2 + |V|^2)

Each half-step solves, for every row i with observed set I_i,
(w0 F^T F + sum_{j in I_i} (w_ij - w0) F_j F_j^T + lambda I) x_i = sum_{j in I_i} w_ij F_j.
Only for tiny matrices: everything is dense.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla


def dense_objective(W: np.ndarray, w0: float, lam: float, U: np.ndarray, V: np.ndarray) -> float:
    """The WALS objective by brute force over the dense m x n grid.

    ``W`` is dense (m x n): the observed weight w_ij where observed, 0 elsewhere.
    """
    U = np.asarray(U, np.float64)
    V = np.asarray(V, np.float64)
    S = U @ V.T
    observed = W > 0
    loss = np.where(observed, W * (1.0 - S) ** 2, w0 * S**2).sum()
    return float(loss + lam * ((U**2).sum() + (V**2).sum()))


def solve_rows(W: np.ndarray, w0: float, lam: float, F: np.ndarray) -> np.ndarray:
    """One exact half-step: the optimal row factors for each row of dense weights ``W`` given the
    fixed factors ``F`` (n x d)."""
    F = np.asarray(F, np.float64)
    d = F.shape[1]
    gram = w0 * F.T @ F + lam * np.eye(d)
    out = np.zeros((W.shape[0], d))
    for i, row in enumerate(W):
        obs = np.flatnonzero(row > 0)
        A = gram.copy()
        b = np.zeros(d)
        for j in obs:
            A += (row[j] - w0) * np.outer(F[j], F[j])
            b += row[j] * F[j]
        out[i] = sla.cho_solve(sla.cho_factor(A), b)
    return out


def fit(W: np.ndarray, w0: float, lam: float, U0: np.ndarray, V0: np.ndarray,
        iterations: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Alternate exact user then item half-steps from (U0, V0); returns U, V and the objective
    after each iteration."""
    U, V = np.asarray(U0, np.float64), np.asarray(V0, np.float64)
    history = []
    for _ in range(iterations):
        U = solve_rows(W, w0, lam, V)
        V = solve_rows(W.T, w0, lam, U)
        history.append(dense_objective(W, w0, lam, U, V))
    return U, V, history


def fold_in(V: np.ndarray, items: np.ndarray, weights: np.ndarray, w0: float, lam: float) -> np.ndarray:
    """docs/definitions.md fold-in: u = (w0 V^T V + sum_I (w_j - w0) V_j V_j^T + lambda I)^-1 sum_I w_j V_j."""
    V = np.asarray(V, np.float64)
    d = V.shape[1]
    A = w0 * V.T @ V + lam * np.eye(d)
    b = np.zeros(d)
    for j, w in zip(items, weights, strict=True):
        A += (w - w0) * np.outer(V[j], V[j])
        b += w * V[j]
    return np.linalg.solve(A, b)
