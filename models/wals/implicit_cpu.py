"""The `implicit` CPU engine of :class:`~mfsoftmax.models.wals.WALS` (``engine="implicit"``,
``device="cpu"``, ``solver="cg"`` or ``"cholesky"``).

WALS divided by w0 is `implicit`'s objective with confidence c_ij = w_ij / w0 on observed
entries (preference 1), confidence 1 elsewhere and regularization lambda / w0; `implicit` 0.7
does not rescale the regularization by the number of observations (its per-row system is
Y^T Y + reg I + sum_I (c_ij - 1) y_j y_j^T, right-hand side sum_I c_ij y_j), so the minimiser
and every exact half-step are WALS's. The engine passes one users x items CSR sharing the
training matrix's index arrays with data w_ij / w0 and ``alpha=1`` (no further copy in
`implicit`). ``"cholesky"`` is `implicit`'s exact ``use_cg=False``; ``"cg"`` its approximate
conjugate-gradient solver (``cg_steps`` per row per half-step).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from ..params import ParamError

_BLAS = {}


def blas_one_thread():
    """Context limiting BLAS to one thread (the controller is built once per process)."""
    if "controller" not in _BLAS:
        import implicit.cpu.als  # noqa: F401  lazy: implicit (~0.3 s), only a WALS fit needs it; loads its BLAS before the inspection

        _BLAS["controller"] = ThreadpoolController()
    return _BLAS["controller"].limit(limits=1, user_api="blas")


class _StopTraining(Exception):
    """Raised inside implicit's fit callback when the suite's callback asks to stop."""


class ImplicitCPU:
    """Fits WALS with `implicit`'s ``AlternatingLeastSquares`` on the CPU; the factors are
    `implicit`'s own arrays, updated in place (:class:`.implicit_gpu.ImplicitGPU` copies them
    back from the device instead)."""

    def check(self, owner: str, p: dict) -> None:
        """Refuse ``w0 = 0``: `implicit`'s confidences ``w / w0`` need ``w0 > 0``."""
        if not p["w0"] > 0:
            raise ParamError(owner, "w0", p["w0"], "w0 = 0 needs solver='direct'")

    def kwargs(self, model) -> dict:
        """`implicit`'s constructor arguments for ``model``'s parameters (the WALS mapping)."""
        return dict(factors=model.dim, regularization=model.reg / model.w0, alpha=1.0,
                    iterations=model.iterations, calculate_training_loss=False,
                    random_state=model.seed)

    def make(self, model):
        """`implicit`'s model, before its factors are set."""
        from implicit.cpu.als import AlternatingLeastSquares  # lazy: implicit

        return AlternatingLeastSquares(use_cg=model.solver == "cg", num_threads=model.threads,
                                       **self.kwargs(model))

    def put(self, als, U: np.ndarray, V: np.ndarray) -> None:
        """Hand the starting factors to `implicit` (it updates these arrays in place)."""
        als.user_factors, als.item_factors = U, V

    def read_back(self, als, model) -> None:
        """Make ``model.U`` and ``model.V`` the current factors (on the CPU they already are)."""

    def fit(self, model, matrix: sp.csr_matrix, init=None, callback=None) -> None:
        """Fit ``model`` on ``matrix`` from ``init`` (or its own initial factors), calling
        ``model.iteration_done`` after each iteration (which may stop the fit)."""
        m, n = matrix.shape
        # confidences c_ij = w_ij / w0 on the training pattern (shares indices and indptr)
        conf = sp.csr_matrix((model.weights_of(matrix.data) / np.float32(model.w0),
                              matrix.indices, matrix.indptr), shape=matrix.shape, copy=False)
        U, V = model.start_factors(init, m, n)

        def on_iteration(iteration, elapsed, loss):
            self.read_back(als, model)
            if model.iteration_done(iteration, callback):
                raise _StopTraining

        t0 = time.perf_counter()
        with blas_one_thread():  # also around the model's creation: implicit checks BLAS there
            als = self.make(model)
            als.cg_steps = model.cg_steps
            self.put(als, U, V)
            model.U, model.V = U, V
            try:
                als.fit(conf, show_progress=model.progress, callback=on_iteration)
            except _StopTraining:
                pass
        model.fit_seconds = time.perf_counter() - t0
        self.read_back(als, model)
