"""The numpy engine of :class:`~mfsoftmax.models.wals.WALS` (``solver="direct"``): exact
alternating least squares, each half-step solving every row's normal equations against the
other side's factors (:func:`.linalg.fold_in`, the same solve as a new user's fold-in). It takes
``w0 = 0`` (observed entries only), where `implicit`'s confidences ``w / w0`` cannot; CPU only.
"""

from __future__ import annotations

import time

import scipy.sparse as sp

from ..params import ParamError
from . import linalg as la
from .implicit_cpu import blas_one_thread


class Direct:
    """Fits WALS by batched exact half-steps in numpy."""

    def check(self, owner: str, p: dict) -> None:
        """Refuse ``device="cuda"``: the direct solver runs on the CPU."""
        if p["device"] == "cuda":
            raise ParamError(owner, "solver", p["solver"], "solver='direct' runs on the CPU")

    def fit(self, model, matrix: sp.csr_matrix, init=None, callback=None) -> None:
        """Fit ``model`` on ``matrix`` from ``init`` (or its own initial factors), calling
        ``model.iteration_done`` after each iteration (which may stop the fit)."""
        m, n = matrix.shape
        model.U, model.V = model.start_factors(init, m, n)
        by_item = matrix.T.tocsr()
        w_users, w_items = model.weights_of(matrix.data), model.weights_of(by_item.data)
        t0 = time.perf_counter()
        with blas_one_thread():
            for it in range(model.iterations):
                model.U = la.fold_in(model.V, la.gramian(model.V, model.w0, model.reg), matrix,
                                     w_users, model.w0)
                model.V = la.fold_in(model.U, la.gramian(model.U, model.w0, model.reg), by_item,
                                     w_items, model.w0)
                if model.iteration_done(it, callback):
                    break
        model.fit_seconds = time.perf_counter() - t0
