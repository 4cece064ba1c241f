"""How the ranks of a data-parallel softmax DNN fit (``ddp``) combine the sparse item-table
gradients after each backward pass: :func:`sync` replaces each table's gradient on every rank by
the sum over ranks, so every rank applies the same lazy row update.

Table synchronisation (``table_sync``)
--------------------------------------
- ``gather`` (default): all-gather each rank's touched rows (coalesced ids + gradient rows,
  all tables packed into one id and one value buffer); every rank builds the summed sparse
  gradient. Traffic W x rows touched x d per step, independent of the table size; works on
  gloo and NCCL (dense collectives only).
- ``touched``: all-gather the touched ids, then a dense all-reduce of the union of touched rows.
- ``dense``: a dense all-reduce of the whole n x (d + 1) table gradient (a touch-count column
  keeps the lazy semantics). O(n d) per step whatever the batch touches.
- ``sparse``: gloo's sparse all-reduce (CPU only; NCCL has no sparse all-reduce).
- TorchRec (``EmbeddingBagCollection`` with fused row-wise Adagrad, sharded tables): not usable
  here: torchrec 1.9.2 installs without changing torch 2.13, but its kernel library (fbgemm_gpu
  1.9.0, and fbgemm-gpu-cpu 1.9.0) fails to load against torch 2.13 (undefined symbol
  ``torch::autograd::_wrap_outputs``); no build for this torch existed when measured.

Measured (2 gloo ranks, one thread each, on this suite's loaded 2-core CPU runner; two sparse
tables of d = 64; per rank and step 128 history bags of 12 zipf-drawn items and 128 positives +
200 shared negatives, i.e. ~880 touched rows at 1e3 items, ~1730 at 1e5; the synchronisation
alone, median ms per step, two runs, methods interleaved)::

    items   gather    touched    sparse (gloo)   dense
    1e3     4.0-4.0   3.4-3.8    7.3-8.0         3.4-4.0
    1e5     6.2-6.6   7.4-12.6   12.3-31.9       215-243

In training (sampled-uniform, B = 256, 5000 users, 2 epochs) the seconds of synchronisation per
epoch were, at 1e5 items, gather 5.7-6.1, touched 5.1-5.3, sparse 7.2-7.8, dense 68-71 (epochs of
18-27 s against 92 s with dense); at 1e3 items 0.9-2.6 s for every method (the machine's noise).
``gather`` is the fastest or level at both sizes, its cost does not grow with the table, and it
needs only dense collectives (NCCL has all-gather but no sparse all-reduce): the default.
Limits: every rank holds a full copy of every table and its optimizer state (the memory bound of
this design; past it, sharded tables: TorchRec); the touched rows of all ranks are gathered to
every rank (W x rows x d per step), so traffic grows with W, and each rank applies the update of
the union of rows (the table update is not divided among the ranks, only the forward and
backward passes are).

"""

from __future__ import annotations

import torch

SYNCS = ("gather", "touched", "dense", "sparse")


def _local_grads(tables: list) -> list[torch.Tensor]:
    """Each table's gradient, coalesced (an empty sparse one where this rank touched none)."""
    out = []
    for p in tables:
        g = p.grad
        if g is None:
            g = torch.sparse_coo_tensor(torch.empty(1, 0, dtype=torch.long, device=p.device),
                                        p.new_empty((0,) + tuple(p.shape[1:])), p.shape,
                                        check_invariants=False)
        out.append(g.coalesce())
    return out


def sync(rank) -> None:
    """Replace the gradient of each sparse table of ``rank`` (a ``ddp.Rank``: ``tables``,
    ``table_sync``, ``world``, ``dev`` and its collectives) by the sum over ranks."""
    if not rank.tables:
        return
    grads = _local_grads(rank.tables)
    if rank.table_sync == "sparse":
        for g in grads:
            rank.all_reduce(g)  # gloo: in place, coalesced
        new = grads
    elif rank.table_sync == "dense":
        new = [_dense(rank, p, g) for p, g in zip(rank.tables, grads, strict=True)]
    else:
        new = _gathered(rank, grads)
    for p, g in zip(rank.tables, new, strict=True):
        p.grad = g


def _sparse(p: torch.Tensor, idx: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    return torch.sparse_coo_tensor(idx[None], vals, p.shape, check_invariants=False)


def _dense(rank, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    idx, vals = g.indices()[0], g.values()
    D = p.new_zeros(p.shape[0], vals.shape[1] + 1)
    D.index_add_(0, idx, torch.cat([vals, vals.new_ones(len(idx), 1)], 1))
    rank.all_reduce(D)
    rows = torch.nonzero(D[:, -1]).flatten()
    return _sparse(p, rows, D[rows, :-1])


def _gathered(rank, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """``gather`` and ``touched``: every rank's touched ids (and, for ``gather``, rows)."""
    widths = [g.values().shape[1] for g in grads]
    idx = [g.indices()[0] for g in grads]
    vals = [g.values() for g in grads]
    counts = torch.tensor([len(i) for i in idx], dtype=torch.long, device=rank.dev)
    all_counts = torch.stack(rank.all_gather(counts)).cpu()  # (W, tables)
    n_ids = int(all_counts.sum(1).max())
    ibuf = torch.full((n_ids,), -1, dtype=torch.long, device=rank.dev)
    ibuf[:int(counts.sum())] = torch.cat(idx)
    all_ids = rank.all_gather(ibuf)
    per_rank_ids = [torch.split(all_ids[w][:int(all_counts[w].sum())], all_counts[w].tolist())
                    for w in range(rank.world)]
    if rank.table_sync == "gather":
        sizes = all_counts * torch.tensor(widths)
        n_vals = int(sizes.sum(1).max())
        vbuf = vals[0].new_zeros(n_vals)
        flat = torch.cat([v.reshape(-1) for v in vals])
        vbuf[:len(flat)] = flat
        all_vals = rank.all_gather(vbuf)
        out = []
        for t, (p, width) in enumerate(zip(rank.tables, widths, strict=True)):
            ids_t, vals_t = [], []
            for w in range(rank.world):
                pieces = torch.split(all_vals[w][:int(sizes[w].sum())], sizes[w].tolist())
                ids_t.append(per_rank_ids[w][t])
                vals_t.append(pieces[t].view(-1, width))
            out.append(_sparse(p, torch.cat(ids_t), torch.cat(vals_t)))
        return out  # the optimizer coalesces (sums the ranks' rows)
    # touched: the union of the ranks' rows, one dense all-reduce of those rows
    unions, bufs = [], []
    for t in range(len(rank.tables)):
        union = torch.unique(torch.cat([per_rank_ids[w][t] for w in range(rank.world)]))
        buf = vals[t].new_zeros(len(union), widths[t])
        buf[torch.searchsorted(union, idx[t])] = vals[t]
        unions.append(union)
        bufs.append(buf)
    flat = torch.cat([b.reshape(-1) for b in bufs])
    rank.all_reduce(flat)
    pieces = torch.split(flat, [b.numel() for b in bufs])
    return [_sparse(p, u, piece.view(-1, width)) for p, u, piece, width
            in zip(rank.tables, unions, pieces, widths, strict=True)]
