"""How much memory each GPU has: asked of ``nvidia-smi``, or given (``--gpu-memory 80GiB``).

Packing (:meth:`~flowrl_core.scheduling.slots.PrioritySlots.packed`) needs a capacity per GPU.
``nvidia-smi --query-gpu=index,memory.total --format=csv,noheader,nounits`` prints one line per
GPU, ``index, MiB``.  Its indices follow PCI bus order; CUDA's ``CUDA_VISIBLE_DEVICES`` does too
only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (otherwise fastest first) — the same GPU either way on
a machine of identical GPUs, the usual case.  A manual ``--gpu-memory`` wins: one size for every
GPU (``80GiB``) or one per GPU (``0=80GiB,1=40GiB``); it is also how tests fake a device.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence

from flowrl_core.errors import FlowRLError

NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"]

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
          "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class DeviceConfigError(FlowRLError, ValueError):
    pass


def parse_size(text: str) -> int:
    """Bytes from ``80GiB``, ``80GB`` (10^9), ``81920MiB``, ``1.5TiB`` or a plain byte count."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise DeviceConfigError(f"memory size {text!r} is not a size; write e.g. 80GiB, 80GB or 81920MiB")
    value = int(float(m.group(1)) * _UNITS[unit])
    if value <= 0:
        raise DeviceConfigError(f"memory size {text!r} must be positive")
    return value


def parse_nvidia_smi_memory(text: str) -> dict[str, int]:
    """``{index: bytes}`` from ``nvidia-smi --query-gpu=index,memory.total --format=csv,noheader,nounits``."""
    out: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not fields[0].isdigit() or not re.fullmatch(r"[0-9]+(\.[0-9]+)?", fields[1]):
            raise DeviceConfigError(f"nvidia-smi line {n} is not 'index, MiB': {line.strip()!r}; "
                                    "pass --gpu-memory (e.g. 80GiB) instead")
        out[fields[0]] = int(float(fields[1]) * 2**20)
    return out


def query_gpu_memory(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> dict[str, int]:
    """This machine's GPUs and their memory, ``{}`` when there is no ``nvidia-smi`` or no GPU."""
    if run is subprocess.run and not shutil.which("nvidia-smi"):
        return {}
    try:
        done = run(NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if done.returncode != 0:
        return {}
    return parse_nvidia_smi_memory(done.stdout)


def gpu_capacities(gpus: Sequence[str], gpu_memory: str | None = None,
                   query: Callable[[], dict[str, int]] = query_gpu_memory) -> dict[str, int]:
    """Capacity in bytes of each GPU in ``gpus`` (``--gpus 0,1``), from ``gpu_memory`` or ``query``."""
    gpus = [str(g).strip() for g in gpus]
    if not gpus:
        raise DeviceConfigError("packing needs GPUs: pass --gpus, e.g. --gpus 0,1")
    if gpu_memory:
        if "=" not in gpu_memory:
            size = parse_size(gpu_memory)
            return {g: size for g in gpus}
        given: dict[str, int] = {}
        for item in gpu_memory.split(","):
            gpu, sep, size = item.partition("=")
            if not sep or not gpu.strip():
                raise DeviceConfigError(f"--gpu-memory item {item!r} is not GPU=SIZE; write e.g. 0=80GiB,1=40GiB")
            given[gpu.strip()] = parse_size(size)
        missing = [g for g in gpus if g not in given]
        if missing:
            raise DeviceConfigError(f"--gpu-memory gives no size for GPU {', '.join(missing)}; "
                                    f"add e.g. {missing[0]}=80GiB or give one size for all")
        return {g: given[g] for g in gpus}
    found = query()
    missing = [g for g in gpus if g not in found]
    if missing:
        seen = ", ".join(sorted(found)) or "none"
        raise DeviceConfigError(f"nvidia-smi reports no GPU {', '.join(missing)} (it sees: {seen}); "
                                "check --gpus or pass --gpu-memory 80GiB")
    return {g: found[g] for g in gpus}


def fit_count(capacity_bytes: int, need_bytes: int, margin: float = 0.10) -> int:
    """How many trainings of ``need_bytes`` fit on one device (at least 1: an oversized one runs alone).

    This is the per-worker ``--limit`` for the pool launcher: one worker per GPU, limit = how many
    of the largest skill's estimate fit under the GPU's budget.
    """
    if need_bytes <= 0:
        raise ValueError(f"need_bytes must be positive, got {need_bytes}")
    return max(1, int(capacity_bytes * (1.0 - margin)) // int(need_bytes))
