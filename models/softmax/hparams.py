"""The softmax DNN's hyper-parameters, declared once and grouped: each parameter's type and
valid range (a :class:`~mfsoftmax.models.params.Param`) and what it does.

The constructor of :class:`~mfsoftmax.models.softmax.SoftmaxDNN` takes them as flat keywords
(``SoftmaxDNN(dim=64, loss="in-batch", epochs=5)``, a config's ``[models.x.params]``), with its
defaults in its signature; ``get_params`` is derived from that signature, as scikit-learn does,
and :data:`GROUPS` tells which group each belongs to (``SoftmaxDNN.param_groups()``).

- :data:`TOWER`: what the network is (sizes, inputs, tables); changing one means a new model.
- :data:`TRAINING`: how it is fitted (loss, optimisers, batches, stopping, data parallelism,
  precision of the matmuls).
- :data:`SERVING`: how a fitted model answers one request; no effect on ``fit``, ``score`` or
  ``recommend``.
- :data:`RUN`: seed, device, threads, progress bar and the result's name.
"""

from __future__ import annotations

from ..params import Choice, Flag, ListOf, Num, ParamError, Text, Whole
from .batches import EXAMPLE_WEIGHTS
from .optim import KINDS
from .precision import PRECISIONS
from .table_sync import SYNCS

__all__ = ["GROUPS", "LOSSES", "NOT_SAVED", "PARAMS", "RUN", "SERVE_RUNTIMES", "SERVING", "TOWER",
           "TRAINING", "check_trainable"]

LOSSES = ("full", "sampled-uniform", "sampled-popularity", "in-batch", "hard-negatives", "positives-only")
OPTIMIZERS = ("adam", "adagrad")
ITEM_TOWER_MODES = (None, "add", "replace")
HASH_SCOPES = ("all", "inputs")
BIAS_INITS = ("zero", "log-popularity")
HISTORY_DROPOUT = 0.1  # measured: most of the new-user gain for the least warm cost
TABLE_OPTIMIZER = "rowwise-adagrad"  # measured: faster at 1e5 items and better on ml-100k
TABLE_LR = 0.05
FEATURE_DIM = 16  # width of each feature embedding (capped at dim): gender has 2 values
TABLE_SYNC = "gather"  # measured: table_sync, "Measured"
DDP_TIMEOUT = 600.0  # seconds a rank waits for the others
SERVE_RUNTIMES = ("auto", "eager", "torchscript")

#: The network. ``dim``: d, the query output, item embeddings (and feature embeddings, capped
#: by ``feature_dim``). ``hidden``, ``layer_norm``: the query MLP's hidden widths (ReLU,
#: optional LayerNorm). ``use_history``, ``use_user_features``: the query's inputs (at least
#: one on). ``item_tower``: an item-feature tower added to or replacing the free item
#: embedding (None: none). ``hash_buckets``: hash item ids and large categorical features into
#: this many rows (None: exact tables); ``hash_scope``: ``all`` tables, or only the query
#: tower's ``inputs`` (history items, user features) with the item side exact, so every item
#: keeps a score of its own. ``item_bias``: a learned per-item bias b_j added to every logit and
#: score; ``bias_init``: zeros, or centred log(1 + training count) (measured on ml-100k new
#: users: no better than zero). ``feature_dim``: the width of each user/item feature embedding
#: (capped at ``dim``; the MLP's input is ``dim + feature_dim * n_features``).
TOWER = {
    "dim": Whole(low=1), "hidden": ListOf(item=Whole(low=1)), "layer_norm": Flag(),
    "use_history": Flag(), "use_user_features": Flag(),
    "item_tower": Choice(values=ITEM_TOWER_MODES), "hash_buckets": Whole(low=1, none=True),
    "hash_scope": Choice(values=HASH_SCOPES), "item_bias": Flag(),
    "bias_init": Choice(values=BIAS_INITS), "feature_dim": Whole(low=1),
}

#: The fit. ``loss``: one of :data:`LOSSES`; ``n_negatives``: m, negatives per batch (sampled)
#: or per row (hard-negatives); ``hard_pool``: the uniform candidate pool of ``hard-negatives``
#: (None: ``min(n_items, 4 m)``); ``gravity``: lambda_g, adds ``lambda_g * sum((Q^T Q) *
#: (V^T V)) / (B n)``. ``optimizer``, ``lr``, ``weight_decay``: the dense parameters' optimiser
#: (coupled L2). ``table_optimizer``, ``table_lr``: the item-id tables' (history, V, bias) lazy
#: optimiser when their gradients are sparse (every loss but ``full``, no gravity):
#: ``rowwise-adagrad`` keeps one float of state per row; None: ``optimizer`` and ``lr``;
#: ``table_lr`` None: ``lr``. ``batch_size``, ``epochs``, ``patience``, ``eval_k``: early
#: stopping on validation Recall@eval_k after ``patience`` epochs without gain.
#: ``max_history``: cap on a training bag's size (seeded subsample; scoring pools the whole
#: history). ``history_dropout``: probability in [0, 1) that a training example's history bag
#: is emptied (cold start). ``example_weight``, ``alpha``, ``eps``: each example weighted by
#: ``1 + alpha c`` (``linear``), ``1 + alpha log(1 + c / eps)`` (``log``) or 1 (``none``) of its
#: interaction value c; weighted mean loss. ``workers``: data-parallel ranks (global batch
#: ``batch_size``, per rank ``batch_size / workers``, learning rates unchanged; ``threads`` per
#: rank); ``table_sync``: how ranks combine the sparse table gradients (``table_sync`` module);
#: ``ddp_timeout``: seconds a rank waits for the others (must exceed rank 0's validation).
#: ``precision``: the matmuls of training and of the query tower in ``fp32``, ``bf16``
#: (``torch.autocast``; tables, parameters, optimiser state and the loss's reduction stay
#: float32), or ``auto`` (bf16 where the hardware has native bf16 matmuls); with
#: ``workers > 1`` every rank autocasts its shard the same way (gradients reduced in float32).
TRAINING = {
    "loss": Choice(values=LOSSES), "n_negatives": Whole(low=1),
    "hard_pool": Whole(low=1, none=True), "gravity": Num(low=0),
    "optimizer": Choice(values=OPTIMIZERS), "lr": Num(low=0, open_low=True),
    "weight_decay": Num(low=0), "table_optimizer": Choice(values=(None, *KINDS)),
    "table_lr": Num(low=0, open_low=True, none=True),
    "batch_size": Whole(low=1), "epochs": Whole(low=1), "patience": Whole(low=0),
    "eval_k": Whole(low=1), "max_history": Whole(low=1, none=True),
    "history_dropout": Num(low=0, high=1, open_high=True),
    "example_weight": Choice(values=EXAMPLE_WEIGHTS), "alpha": Num(low=0),
    "eps": Num(low=0, open_low=True), "workers": Whole(low=1),
    "table_sync": Choice(values=SYNCS), "ddp_timeout": Num(low=0, open_low=True),
    "precision": Choice(values=PRECISIONS),
}

#: One request. ``serve_runtime``: how ``recommend_one`` (the lean single-query path) runs the
#: query tower: ``eager``, ``torchscript`` (a trace checked equal to eager; raises if it cannot
#: be built or differs), or ``auto`` (TorchScript when correct and not slower, else eager; the
#: reason in ``serve_info()``).
SERVING = {"serve_runtime": Choice(values=SERVE_RUNTIMES)}

#: Where and how it runs: ``seed`` (determinism), ``device`` (``cpu``/``cuda``), ``threads``
#: (torch threads during fit), ``progress`` (a tqdm bar), ``name`` (the result's name; None:
#: ``softmax-<loss>``, ``-gravity`` when gravity is on).
RUN = {"seed": Whole(low=0), "device": Choice(values=("cpu", "cuda")), "threads": Whole(low=1),
       "progress": Flag(), "name": Text(none=True)}

GROUPS = {"tower": TOWER, "training": TRAINING, "serving": SERVING, "run": RUN}
PARAMS = {name: spec for group in GROUPS.values() for name, spec in group.items()}
#: Constructor parameters that are not hyper-parameters: left out of ``get_params`` (and so of
#: a saved model and of results.json).
NOT_SAVED = ("progress",)


def check_trainable(owner: str, p: dict) -> None:
    """Refuse the combinations of ``p`` (checked values) that train nothing."""
    if not (p["use_history"] or p["use_user_features"]):
        raise ParamError(owner, "use_history", False, "use_history and use_user_features "
                         "are both false: the query tower needs an input")
    if p["loss"] == "in-batch" and p["batch_size"] < 2:
        raise ParamError(owner, "batch_size", p["batch_size"], "loss='in-batch' needs "
                         "batch_size >= 2: a batch's other items are its negatives")
    if p["batch_size"] < p["workers"]:
        raise ParamError(owner, "batch_size", p["batch_size"], f"workers={p['workers']} need "
                         "batch_size >= workers: each rank computes a share of every batch")
