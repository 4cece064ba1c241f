"""Precision of the softmax DNN's matmuls (``precision``: ``fp32``, ``bf16``, ``auto``).

With bf16 (``auto`` on a CPU with AMX or AVX-512 BF16, or a bf16 CUDA device) each training
step's forward runs under ``torch.autocast(dtype=bfloat16)``: the query MLP's and the loss's
matmuls in bf16, the logits promoted back to float32 by the logQ/bias terms, so the
log-softmax and the batch's reduction are float32; the embedding tables, every parameter, the
optimiser state and the backward's accumulation stay float32. ``full`` keeps its fused float32
logits (the query tower in bf16). The query tower serves in the same precision.
Data-parallel ranks (``workers > 1``, ``ddp``) autocast their shard's forward the same way; the
gradients they all-reduce are the float32 parameters' (``train_info["precision"]``).
"""

from __future__ import annotations

import torch

PRECISIONS = ("fp32", "bf16", "auto")
#: /proc/cpuinfo flags of a CPU with native bfloat16 matmuls (Intel AMX, AVX-512 BF16)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The :data:`BF16_CPU_FLAGS` this CPU has (``cpuinfo``: the text of /proc/cpuinfo, read
    when None; empty where it cannot be read)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as fh:
                cpuinfo = fh.read()
        except OSError:
            return []
    line = next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in BF16_CPU_FLAGS if f in have]


def resolve_precision(precision: str, device: str = "cpu", cpuinfo: str | None = None) -> str:
    """``fp32`` or ``bf16``: ``auto`` is bf16 where the hardware has native bf16 matmuls (a
    CUDA device that supports bf16; a CPU with AMX or AVX-512 BF16, :func:`cpu_bf16_flags`),
    else fp32."""
    if precision != "auto":
        return precision
    if device == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_bf16_flags(cpuinfo) else "fp32"


def model_precision(precision: str, device: str = "cpu") -> str:
    """The resolved precision of a ``SoftmaxDNN(precision=...)`` (:func:`resolve_precision`),
    the same for one process and for every data-parallel rank (``ddp``); ValueError naming a
    bad value."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    return resolve_precision(precision, device)


def autocast(model):
    """The mixed-precision context of ``model``'s forward passes: bf16 matmuls (``torch.autocast``)
    when its resolved precision is bf16, a no-op otherwise. Parameters, optimiser state,
    embedding tables and the loss's reduction stay float32."""
    dev = "cuda" if str(model.device).startswith("cuda") else "cpu"
    return torch.autocast(dev, dtype=torch.bfloat16, enabled=model.precision_resolved == "bf16")
