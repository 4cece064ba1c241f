"""WALS linear algebra without dense m x n arrays: the objective (Gramian trick) and batched
fold-in solves (docs/definitions.md, "WALS")."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: bound on the floats of one temporary block (observed scores, padded fold-in stacks)
MAX_BLOCK = 1 << 22


def observed_scores(U: np.ndarray, V: np.ndarray, matrix: sp.csr_matrix) -> np.ndarray:
    """<U_i, V_j> for every stored entry of ``matrix`` (aligned with ``matrix.data``).

    Products in the factors' precision (float32, as implicit), in cache-sized chunks; float64 out.
    """
    nnz, d = matrix.nnz, U.shape[1]
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    out = np.empty(nnz, dtype=np.float64)
    step = max(64, (1 << 18) // max(1, d))
    for s in range(0, nnz, step):
        e = min(nnz, s + step)
        out[s:e] = np.einsum("ij,ij->i", U[rows[s:e]], V[matrix.indices[s:e]])
    return out


def gram64(F: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """F^T F accumulated in float64 over row chunks (bounded memory)."""
    d = F.shape[1]
    out = np.zeros((d, d))
    for s in range(0, F.shape[0], chunk):
        block = np.asarray(F[s:s + chunk], dtype=np.float64)
        out += block.T @ block
    return out


def objective(U: np.ndarray, V: np.ndarray, matrix: sp.csr_matrix, weights: np.ndarray,
              w0: float, reg: float) -> float:
    """Full WALS objective: sum_Omega w (1 - s)^2 + w0 (sum_all s^2 - sum_Omega s^2)
    + reg (|U|^2 + |V|^2), the all-pairs sum as sum((U^T U) * (V^T V)) and |U|^2 = tr(U^T U).

    ``weights`` are the observed weights w_ij aligned with ``matrix.data``.
    """
    s = observed_scores(U, V, matrix)
    gu, gv = gram64(U), gram64(V)
    all_pairs = float(np.sum(gu * gv))
    observed = float(np.dot(weights, (1.0 - s) ** 2))
    unobserved = w0 * (all_pairs - float(np.dot(s, s)))
    return observed + unobserved + reg * (float(np.trace(gu)) + float(np.trace(gv)))


def gramian(F: np.ndarray, w0: float, reg: float) -> np.ndarray:
    """w0 F^T F + reg I (float64), the part of every row's system shared by all rows."""
    return w0 * gram64(F) + reg * np.eye(F.shape[1])


def fold_in(F: np.ndarray, gram: np.ndarray, rows: sp.csr_matrix, weights: np.ndarray,
            w0: float) -> np.ndarray:
    """Exact least-squares rows for each row of ``rows`` against fixed factors ``F``.

    Solves (gram + sum_{j in I} (w_j - w0) F_j F_j^T) x = sum_{j in I} w_j F_j per row, with
    ``gram`` = w0 F^T F + reg I and ``weights`` aligned with ``rows.data``. Rows are sorted by
    length and solved in padded blocks (one stacked ``np.linalg.solve`` per block); empty rows
    give 0 (the exact solution of a zero right-hand side).
    """
    n_rows, d = rows.shape[0], F.shape[1]
    out = np.zeros((n_rows, d), dtype=np.float32)
    lens = np.diff(rows.indptr)
    nz = np.flatnonzero(lens)
    order = nz[np.argsort(lens[nz], kind="stable")]
    sorted_lens = lens[order]
    cost = sorted_lens.astype(np.int64) * d + d * d  # floats per row of a block, nondecreasing
    start = 0
    while start < len(order):
        # largest block whose size times its longest row's cost stays under MAX_BLOCK
        # and whose rows are of similar length (padding wastes at most ~25% plus 8 entries)
        size = np.arange(1, len(order) - start + 1) * cost[start:]
        fits = (size <= MAX_BLOCK) & (sorted_lens[start:] <= 1.25 * sorted_lens[start] + 8)
        end = start + max(1, int(np.count_nonzero(fits)))
        block = order[start:end]
        L = int(lens[block[-1]])
        pos = rows.indptr[block][:, None] + np.arange(L)[None, :]
        valid = np.arange(L)[None, :] < lens[block][:, None]
        pos = np.where(valid, pos, 0)
        Fi = np.asarray(F[rows.indices[pos]], dtype=np.float32)  # b x L x d
        w = np.where(valid, weights[pos], 0.0).astype(np.float32)
        c = np.where(valid, w - np.float32(w0), 0.0).astype(np.float32)
        # float32 products (as implicit), summed with the float64 Gramian, float64 solve
        Fc = np.ascontiguousarray((Fi * c[..., None]).transpose(0, 2, 1))
        A = gram[None] + np.matmul(Fc, Fi)
        b = np.matmul(w[:, None, :].astype(np.float64), Fi)[:, 0, :]
        out[block] = np.linalg.solve(A, b[..., None])[..., 0]
        start = end
    return out
