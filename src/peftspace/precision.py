"""Mixed precision: which precision ``auto`` means on this hardware, and the forward passes' context.

On the CPU and on GPUs that do bf16 natively (``torch.cuda.is_bf16_supported(including_emulation=False)``:
Ampere and later) ``auto`` is bf16 autocast (or fp32 where the CPU lacks bf16); on older GPUs it is fp16
autocast, whose gradients a ``torch.amp.GradScaler`` keeps from underflowing (``grad_scaler``).

An explicit ``bf16`` is refused on a GPU without native bf16: torch only emulates it there, slowly and
without cuBLAS/cuDNN kernels for every op, so a trial would crawl or fail deep inside. On a CPU
without native bf16 it is kept: CPU autocast emulates bf16 for every op, only more slowly.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch

from peftspace.design import PeftspaceError
from peftspace.schedule import PRECISIONS


def resolve_precision(precision: str, device_type: str = "cpu") -> str:
    """``bf16``, ``fp16`` or ``fp32``: ``auto`` is bf16 where ``device_type`` computes in bf16 natively
    (``native_bf16``); otherwise fp16 on a CUDA GPU, fp32 on the CPU.

    Raises:
        PeftspaceError: a precision that is not one of ``PRECISIONS``, or ``bf16`` on a CUDA GPU without native bf16.
    """
    if precision not in PRECISIONS:
        raise PeftspaceError(f"precision={precision!r} is not one of {list(PRECISIONS)}")
    if precision == "bf16" and device_type == "cuda" and not native_bf16(device_type):
        raise PeftspaceError("precision='bf16' but this GPU does not do bf16 natively "
                             "(torch.cuda.is_bf16_supported(including_emulation=False) is False; torch would emulate it, "
                             "slowly); use precision='auto' (fp16 with a gradient scaler on this GPU) or 'fp32'")
    if precision != "auto":
        return precision
    if native_bf16(device_type):
        return "bf16"
    return "fp16" if device_type == "cuda" else "fp32"


def native_bf16(device_type: str = "cpu", cpuinfo: str | None = None, capability: str | None = None) -> bool:
    """Whether ``device_type`` does bf16 natively: a CUDA GPU that says so, or a CPU with AVX512-BF16 or AMX.

    For the CPU, the ``flags`` of ``cpuinfo`` (default: /proc/cpuinfo) or torch's CPU ``capability``
    (default: ``torch.backends.cpu.get_cpu_capability()``) decide; without either, fp32 is kept.
    """
    if device_type == "cuda":  # without the flag, torch also says True on GPUs where it only emulates bf16 (T4, V100)
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
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
    """The forward passes' context for a resolved ``precision``: bf16 or fp16 autocast, or nothing for fp32."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


def grad_scaler(precision: str, device_type: str = "cpu"):
    """The loss scaler fp16 training needs (``torch.amp.GradScaler``), or None for bf16 and fp32."""
    return torch.amp.GradScaler(device_type) if precision == "fp16" else None


def clipped_step(optimizer, params, max_grad_norm: float, scaler=None) -> None:
    """Clip ``params``' gradients to ``max_grad_norm`` and step ``optimizer``.

    With an fp16 ``scaler`` (``grad_scaler``; the loss was ``scaler.scale(loss)``), the gradients are
    unscaled before clipping, and a step whose gradients are not finite is skipped (the scale shrinks).
    """
    if scaler is not None:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
