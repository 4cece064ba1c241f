"""The `implicit` GPU engine of :class:`~mfsoftmax.models.wals.WALS` (``engine="implicit"``,
``device="cuda"``): `implicit.gpu`'s ALS, conjugate gradient only, with the CPU engine's mapping
and loop (:mod:`.implicit_cpu`); the factors live on the device and are copied back after each
iteration. Needs an `implicit` build with CUDA (``implicit.gpu.HAS_CUDA``)."""

from __future__ import annotations

import numpy as np

from .implicit_cpu import ImplicitCPU


class ImplicitGPU(ImplicitCPU):
    """Fits WALS with ``implicit.gpu.als.AlternatingLeastSquares``."""

    def make(self, model):
        """`implicit.gpu`'s model; RuntimeError without CUDA, ValueError for a solver other
        than ``"cg"`` (`implicit.gpu` has no Cholesky)."""
        import implicit.gpu  # lazy: implicit

        if not implicit.gpu.HAS_CUDA:
            raise RuntimeError("WALS(device='cuda'): this implicit build has no CUDA support "
                               "(implicit.gpu.HAS_CUDA is False); use device='cpu'")
        if model.solver != "cg":
            raise ValueError("WALS(device='cuda') supports solver='cg' only (implicit.gpu has no Cholesky)")
        import implicit.gpu.als  # lazy: implicit

        return implicit.gpu.als.AlternatingLeastSquares(**self.kwargs(model))

    def put(self, als, U: np.ndarray, V: np.ndarray) -> None:
        import implicit.gpu  # lazy: implicit

        als.user_factors, als.item_factors = implicit.gpu.Matrix(U), implicit.gpu.Matrix(V)

    def read_back(self, als, model) -> None:
        model.U, model.V = als.user_factors.to_numpy(), als.item_factors.to_numpy()
