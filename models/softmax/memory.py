"""What a softmax DNN fit allocates at least (``SoftmaxDNN.memory_parts``), checked before the
fit allocates anything (``models/params.py``, ``check_memory``)."""

from __future__ import annotations

from .batches import DENSE_POOL_MAX
from .towers import table_rows

#: a spawned rank's own interpreter with torch and the models imported (283 MiB RSS measured
#: on the 2-core development machine; counted low)
RANK_PROCESS_BYTES = 250 * 2**20


def memory_parts(model, n_users: int, n_items: int) -> dict:
    """Bytes a fit of ``model`` (``SoftmaxDNN``) on ``n_users x n_items`` allocates at least:
    the item tables and the query MLP (feature embeddings left out), their gradients and
    optimizer state, the ``full`` loss's logits buffer and dense pooling matrix, all per copy of
    the model (each rank and the parent with ``workers > 1``), and the ranks' interpreters."""
    d, B, W = model.dim, model.batch_size, model.workers
    v_rows = table_rows(n_items, model.hash_buckets if model.hash_scope == "all" else None)
    rows = v_rows + (table_rows(n_items, model.hash_buckets) if model.use_history else 0)
    widths = [d, *model.hidden, d]
    mlp = 4.0 * sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    adam = 2 if model.optimizer == "adam" else 1
    if model.sparse_items and model.table_optimizer is not None:  # lazy row updates
        state = 4.0 * rows if model.table_optimizer == "rowwise-adagrad" else \
            4.0 * rows * d * (2 if model.table_optimizer == "adam" else 1)
    else:  # dense gradients and the dense optimizer's state
        state = 4.0 * rows * d * (1 + adam)
    copies = W + 1 if W > 1 else 1
    parts = {"item tables": 4.0 * rows * d * copies, "table optimizer state": state * copies,
             "query MLP with gradients and state": mlp * (2 + adam) * copies}
    if model.loss == "full":
        parts["full-softmax logits"] = 4.0 * B * n_items * copies
        if model.hash_buckets is None and model.max_history is None:
            parts["dense pooling matrix"] = 4.0 * min(n_users * n_items, DENSE_POOL_MAX) * copies
    if W > 1:
        parts["rank processes"] = float(RANK_PROCESS_BYTES * W)
    return parts
