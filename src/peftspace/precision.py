"""Mixed precision: which precision ``auto`` means on this hardware, and the forward passes' context."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch

from peftspace.design import PeftspaceError
from peftspace.schedule import PRECISIONS


def resolve_precision(precision: str, device_type: str = "cpu") -> str:
    """``bf16`` or ``fp32``: ``auto`` is bf16 where ``device_type`` computes in bf16 natively (``native_bf16``)."""
    if precision not in PRECISIONS:
        raise PeftspaceError(f"precision={precision!r} is not one of {list(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device_type) else "fp32"


def native_bf16(device_type: str = "cpu", cpuinfo: str | None = None, capability: str | None = None) -> bool:
    """Whether ``device_type`` does bf16 natively: a CUDA GPU that says so, or a CPU with AVX512-BF16 or AMX.

    For the CPU, the ``flags`` of ``cpuinfo`` (default: /proc/cpuinfo) or torch's CPU ``capability``
    (default: ``torch.backends.cpu.get_cpu_capability()``) decide; without either, fp32 is kept.
    """
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags = {flag for line in cpuinfo.splitlines() if line.partition(":")[0].strip() == "flags"
             for flag in line.partition(":")[2].split()}
    capability = (torch.backends.cpu.get_cpu_capability() if capability is None else capability).upper()
    return bool(flags & {"avx512_bf16", "amx_bf16"}) or "BF16" in capability or "AMX" in capability


def autocast(precision: str, device_type: str = "cpu"):
    """The forward passes' context for a resolved ``precision``: bf16 autocast, or nothing for fp32."""
    return nullcontext() if precision == "fp32" else torch.autocast(device_type, dtype=torch.bfloat16)
