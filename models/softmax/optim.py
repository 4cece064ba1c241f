"""Lazy row-wise Adam / Adagrad / row-wise Adagrad for embedding tables with sparse gradients.

Only the rows present in a step's sparse gradient are read and written, so a step costs
O(rows touched x d) whatever the table size (torch's SparseAdam touches O(n) memory per step in
this torch version through ``sparse_mask``). Weight decay is L2 added to the gradient of the
touched rows ("lazy" L2), matching the coupled ``weight_decay`` of ``torch.optim.Adam`` on the
rows that are updated. Adam bias corrections use the optimizer's global step (as SparseAdam).

Kinds and the state they keep per row of an ``n x d`` table:

- ``adam``: first and second moments (2d floats). The gathered rows are updated by torch's
  fused Adam kernel (one pass) where the build has it, else by the same arithmetic in eager ops.
- ``adagrad``: the sum of squared gradients (d floats).
- ``rowwise-adagrad``: one float per row, the sum over steps of the row's mean squared gradient;
  the row's step is ``lr * g / (sqrt(state) + eps)`` (FBGEMM's "rowwise Adagrad", the usual
  optimizer of large embedding tables). A step reads and writes about d floats per touched row
  instead of 3d for Adam: on tables that do not fit in cache that traffic is the cost of a step.
"""

from __future__ import annotations

import torch

KINDS = ("adam", "adagrad", "rowwise-adagrad")


def _fused_adam(p, g, m, v, step, lr, b1, b2, wd, eps) -> bool:
    """One fused Adam pass on contiguous rows; False where this build or device has no kernel."""
    try:
        torch._fused_adam_([p], [g], [m], [v], [], [step], lr=lr, beta1=b1, beta2=b2,
                           weight_decay=wd, eps=eps, amsgrad=False, maximize=False)
    except (AttributeError, NotImplementedError, RuntimeError):
        return False
    return True


def rows_of(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of a sparse gradient and their summed values. A gradient whose
    indices are already strictly increasing (the query tower's ``pool_unique``) is read as it
    is; any other is coalesced (sorted, duplicates summed)."""
    if not grad.is_coalesced():
        idx = grad._indices()[0]
        if bool((idx[1:] > idx[:-1]).all()):  # true for 0 or 1 rows too
            return idx, grad._values()
        grad = grad.coalesce()
    return grad.indices()[0], grad.values()


class LazyRowOptimizer:
    """Row-sparse optimizer over a list of parameters whose gradients are sparse COO tensors.

    Parameters
    ----------
    params : list of Tensor
    kind : one of :data:`KINDS`
    lr, weight_decay : float
    betas, eps : Adam constants (the Adagrads use ``eps`` only, default of torch Adagrad 1e-10).
    fused : bool
        Use torch's fused Adam kernel on the gathered rows when available.
    """

    def __init__(self, params, kind: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 betas=(0.9, 0.999), eps: float | None = None, fused: bool = True):
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: choose one of {', '.join(KINDS)}")
        self.params = list(params)
        self.kind, self.lr, self.weight_decay, self.betas = kind, lr, weight_decay, betas
        self.eps = eps if eps is not None else (1e-8 if kind == "adam" else 1e-10)
        self.fused = bool(fused) and kind == "adam"
        self.t = 0
        if kind == "adam":  # m and v as separate tables: gathered rows are contiguous
            self.state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]
        elif kind == "adagrad":
            self.state = [(torch.zeros_like(p),) for p in self.params]
        else:
            self.state = [(p.new_zeros(p.shape[0]),) for p in self.params]
        self._steps = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        for p, st in zip(self.params, self.state, strict=True):
            if p.grad is None:
                continue
            if not p.grad.is_sparse:
                raise ValueError("LazyRowOptimizer needs sparse gradients (sparse=True embeddings)")
            idx, vals = rows_of(p.grad)
            prow = p.index_select(0, idx)
            rows = [s.index_select(0, idx) for s in st]
            if self.kind == "adam":
                self._adam(prow, vals, *rows)
            else:
                if self.weight_decay:
                    vals = vals.add(prow, alpha=self.weight_decay)
                acc = rows[0]
                if self.kind == "adagrad":
                    acc.addcmul_(vals, vals)
                    prow.addcdiv_(vals, acc.sqrt().add_(self.eps), value=-self.lr)
                else:
                    acc.add_(vals.square().mean(1))
                    prow.addcmul_(vals, acc.sqrt().add_(self.eps).reciprocal_()[:, None], value=-self.lr)
            # rows are distinct after coalesce: copy back (cheaper than index_add_)
            for s, r in zip(st, rows, strict=True):
                s.index_copy_(0, idx, r)
            p.index_copy_(0, idx, prow)

    def _adam(self, prow, vals, m, v) -> None:
        b1, b2 = self.betas
        if self.fused:
            key = (prow.device, prow.dtype)
            step = self._steps.get(key)
            if step is None:
                step = self._steps[key] = torch.zeros((), dtype=prow.dtype, device=prow.device)
            step.fill_(self.t)
            if _fused_adam(prow, vals.contiguous(), m, v, step, self.lr, b1, b2, self.weight_decay, self.eps):
                return
            self.fused = False  # no kernel here: eager from now on (same arithmetic)
        if self.weight_decay:
            vals = vals.add(prow, alpha=self.weight_decay)
        m.mul_(b1).add_(vals, alpha=1 - b1)
        v.mul_(b2).addcmul_(vals, vals, value=1 - b2)
        denom = v.sqrt().div_((1 - b2 ** self.t) ** 0.5).add_(self.eps)
        prow.addcdiv_(m, denom, value=-self.lr / (1 - b1 ** self.t))
