"""Lazy row-wise Adam / Adagrad for embedding tables with sparse gradients.

Only the rows present in a step's sparse gradient are read and written, so a step costs
O(rows touched x d) whatever the table size (torch's SparseAdam touches O(n) memory per step in
this torch version through ``sparse_mask``). Weight decay is L2 added to the gradient of the
touched rows ("lazy" L2), matching the coupled ``weight_decay`` of ``torch.optim.Adam`` on the
rows that are updated. Adam bias corrections use the optimizer's global step (as SparseAdam).
"""

from __future__ import annotations

import torch


class LazyRowOptimizer:
    """Row-sparse optimizer over a list of parameters whose gradients are sparse COO tensors.

    Parameters
    ----------
    params : list of Tensor
    kind : ``"adam"`` or ``"adagrad"``
    lr, weight_decay : float
    betas, eps : Adam constants (Adagrad uses ``eps`` only, default of torch Adagrad 1e-10).
    """

    def __init__(self, params, kind: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 betas=(0.9, 0.999), eps: float | None = None):
        if kind not in ("adam", "adagrad"):
            raise ValueError(f"kind={kind!r}: choose 'adam' or 'adagrad'")
        self.params = list(params)
        self.kind, self.lr, self.weight_decay, self.betas = kind, lr, weight_decay, betas
        self.eps = eps if eps is not None else (1e-8 if kind == "adam" else 1e-10)
        self.t = 0
        # Adam's two moments side by side (n x 2d): one gather and one scatter per step
        width = 2 if kind == "adam" else 1
        self.state = [p.new_zeros(p.shape[0], width * p.shape[1]) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, st in zip(self.params, self.state, strict=True):
            if p.grad is None:
                continue
            if not p.grad.is_sparse:
                raise ValueError("LazyRowOptimizer needs sparse gradients (sparse=True embeddings)")
            g = p.grad.coalesce()
            idx, vals = g.indices()[0], g.values()
            prow = p.index_select(0, idx)
            if self.weight_decay:
                vals = vals.add(prow, alpha=self.weight_decay)
            rows = st.index_select(0, idx)
            if self.kind == "adam":
                d = p.shape[1]
                m, v = rows[:, :d], rows[:, d:]
                m.mul_(b1).add_(vals, alpha=1 - b1)
                v.mul_(b2).addcmul_(vals, vals, value=1 - b2)
                denom = v.sqrt().div_((1 - b2 ** self.t) ** 0.5).add_(self.eps)
                prow.addcdiv_(m, denom, value=-self.lr / (1 - b1 ** self.t))
            else:
                rows.addcmul_(vals, vals)
                prow.addcdiv_(vals, rows.sqrt().add_(self.eps), value=-self.lr)
            # rows are distinct after coalesce: copy back (cheaper than index_add_)
            st.index_copy_(0, idx, rows)
            p.index_copy_(0, idx, prow)
