"""The softmax DNN recommender (``SoftmaxDNN``), one module per part:

- ``model``: the model class (build, forward, scoring, cold items, save/load);
- ``hparams``: its hyper-parameters, grouped (tower, training, serving, run);
- ``towers``, ``bags``: the query tower and item side, the history bags they pool;
- ``losses``, ``optim``: the six losses and gravity, the lazy row optimizers of the item tables;
- ``batches``, ``train``: the training examples and the training loop (one process);
- ``engines``: which engine trains, from ``workers``: ``train`` or ``spawn``;
- ``spawn``, ``ddp``, ``table_sync``: data-parallel training (the launcher, a rank, the
  synchronisation of the sparse tables); ``python -m mfsoftmax.models.softmax.ddp`` under
  torchrun;
- ``precision``, ``memory``: bf16 matmuls, the memory a fit needs;
- ``serving``: the lean one-request path and its TorchScript tower;
- ``persist``: ``save``/``load``.
"""

from __future__ import annotations

from .hparams import LOSSES
from .model import SoftmaxDNN

__all__ = ["LOSSES", "SoftmaxDNN"]
