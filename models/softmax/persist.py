"""Saving and loading a fitted ``SoftmaxDNN``: ``params.json`` (hyper-parameters, sizes, feature
specs, training history), ``state.pt`` (the weights) and ``features.npz`` (user and item
features)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from mfsoftmax.runtime import atomic_write_bytes


def save(model, path) -> None:
    """Write ``model`` (fitted) into the folder ``path``."""
    model._check_fitted()
    path = Path(path)
    buf = io.BytesIO()
    torch.save({k: v.cpu() for k, v in model.net.state_dict().items()}, buf)
    atomic_write_bytes(path / "state.pt", buf.getvalue())
    arrays = {f"user__{k}": v for k, v in model._uf_np.items()}
    arrays.update({f"item__{k}": v for k, v in model._if_np.items()})
    fbuf = io.BytesIO()
    np.savez(fbuf, **arrays)
    atomic_write_bytes(path / "features.npz", fbuf.getvalue())
    meta = {"n_users": model.n_users, "n_items": model.n_items, "user_specs": model.user_specs,
            "item_specs": model.item_specs, "history": model.history,
            "eval_seconds": model.eval_seconds, "fit_seconds": model.fit_seconds,
            "cold_bias": model.cold_bias}
    model._write_params(path, {"class": "SoftmaxDNN", "params": model.get_params(), "meta": meta})


def load(cls, path):
    """The model of class ``cls`` saved by :func:`save` in ``path``."""
    path = Path(path)
    doc = cls._read_params(path)
    params = dict(doc["params"])
    params["hidden"] = tuple(params["hidden"])
    params.setdefault("item_bias", False)  # saved before these options existed
    params.setdefault("history_dropout", 0.0)
    params.setdefault("feature_dim", params["dim"])  # feature embeddings were dim wide
    params.setdefault("hash_scope", "all")
    params.setdefault("table_optimizer", None)  # tables used ``optimizer`` and ``lr``
    params.setdefault("table_lr", None)
    params.setdefault("bias_init", "zero")
    model = cls(**params)
    meta = doc["meta"]
    model._build(meta["n_users"], meta["n_items"], meta["user_specs"], meta["item_specs"])
    with np.load(path / "features.npz") as z:
        uf = {k[len("user__"):]: z[k] for k in z.files if k.startswith("user__")}
        itf = {k[len("item__"):]: z[k] for k in z.files if k.startswith("item__")}
    model._set_features(uf, itf)
    state = torch.load(path / "state.pt", map_location=model._torch_device(), weights_only=True)
    model.net.load_state_dict(state)
    model.net.eval()
    model.history, model.eval_seconds = meta["history"], meta["eval_seconds"]
    model.fit_seconds = meta.get("fit_seconds", 0.0)
    model.cold_bias = float(meta.get("cold_bias", 0.0))
    model._refresh_cache()
    return model
