"""Describe the machine a number was measured on (every result row carries it)."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none); no torch."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16), read without torch
    (the job estimate); :func:`native_bf16` asks torch the same."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_cores() -> int:
    """Cores this process may run on (its affinity set where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def training_device() -> str:
    """The device the Hugging Face Trainer trains on by default: CUDA, else Apple's
    MPS, else the CPU. A run card records it, so a GPU run does not read as a CPU one."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def native_bf16(device: str) -> bool:
    """Whether ``device`` multiplies bf16 natively (CUDA: the GPU says so; CPU: the
    AVX512-BF16 or AMX instructions). Elsewhere bf16 autocast is emulated: correct,
    but slower than fp32."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        # not oneDNN's own check: it says yes for any AVX512 CPU (Skylake, Ice Lake), where bf16 is emulated
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def hardware_info(device: str = "cpu") -> dict:
    import torch
    import transformers

    info = {
        "cpu": cpu_model(),
        "cores": cpu_cores(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def hardware_tag(info: dict) -> str:
    """One short line: ``CPU | N cores | T threads | torch X | transformers Y | device``."""
    chip = info.get("gpu") or info["cpu"]
    return (
        f"{chip} | {info['cores']} cores | {info['threads']} threads | torch {info['torch']} | "
        f"transformers {info['transformers']} | {info['device']}"
    )
