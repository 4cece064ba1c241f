"""Which engine trains a softmax DNN, picked from its parameters (as implicit picks its CPU or
GPU ALS): ``workers = 1`` trains in this process (``train.fit``), ``workers > 1`` spawns that
many data-parallel ranks (``spawn.fit``, torch.distributed). Each engine is a function
``fit(model, train, valid, callback)`` of a built model, which it leaves fitted, with its
``history``, timings and ``train_info``."""

from __future__ import annotations

from . import train


def trainer(workers: int):
    """The ``fit`` function of the engine for ``workers`` ranks."""
    if int(workers) > 1:
        from . import spawn  # lazy: torch.distributed and the rank launcher only with workers > 1

        return spawn.fit
    return train.fit
