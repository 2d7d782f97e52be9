"""How one training process keeps to its share of a GPU, and what happens when it does not.

A packed training gets its share through JAX's allocator settings, read once when the process
initialises its GPU backend — so they are environment variables of the trainer child:

* ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` always: otherwise the first process on a GPU takes
  75 % of it at start-up and nothing else fits.
* ``XLA_PYTHON_CLIENT_MEM_FRACTION`` = the share's cap / the GPU's memory, when packed.  With
  preallocation off the BFC allocator still grows on demand up to this fraction (of the GPU's
  *total* memory in current jaxlib), so a training that outgrows its estimate fails with an
  out-of-memory error in its own process instead of pushing a neighbour over.  jaxlib renamed it
  ``XLA_CLIENT_MEM_FRACTION`` and refuses both at once (measured in jaxlib 0.10: ValueError), so
  we set the old name, which every jaxlib since 0.6 reads, and drop the new one.

An out-of-memory trainer is retried **alone** on a device (``hold(..., exclusive=True)``): its
estimate was wrong or a neighbour outgrew its own, and a GPU of its own is what removes both
causes.  :func:`run_packed` is that rule as a plain function; :func:`classify_exit` recognises an
XLA/JAX out-of-memory from the trainer's exit code and the tail of its output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from flowrl_core.scheduling.slots import Grant, MemoryShare, PrioritySlots

PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"
MEM_FRACTION = "XLA_PYTHON_CLIENT_MEM_FRACTION"
MEM_FRACTION_NEW = "XLA_CLIENT_MEM_FRACTION"


@dataclass(frozen=True)
class JaxMemoryEnv:
    """Environment changes for one trainer process: variables to set and variables to remove."""

    set: Mapping[str, str]
    unset: tuple[str, ...] = ()

    def apply(self, base: Mapping[str, str]) -> dict[str, str]:
        env = {k: v for k, v in base.items() if k not in self.unset}
        env.update(self.set)
        return env


def jax_memory_env(share: MemoryShare | None) -> JaxMemoryEnv:
    """The allocator settings for a trainer holding ``share`` (None: an unpacked slot, as before)."""
    if share is None:
        return JaxMemoryEnv({PREALLOCATE: "false"})
    fraction = min(1.0, max(share.cap_bytes / share.capacity_bytes, 1e-4))
    return JaxMemoryEnv({PREALLOCATE: "false", MEM_FRACTION: f"{fraction:.4f}"}, (MEM_FRACTION_NEW,))


def worker_memory_env(gpu: str | None, runs: int, margin: float = 0.10) -> JaxMemoryEnv:
    """Settings for a pool worker pinned to ``gpu`` that runs up to ``runs`` trainings at once
    (``flowrl worker start --gpu K --limit N``): each gets an even share, ``(1 - margin) / N`` of the
    GPU.  Its flow runs, and their trainer children, inherit the worker's environment."""
    if runs < 1:
        raise ValueError(f"a worker runs at least one training at a time, got {runs}")
    if gpu is None or runs == 1:
        return jax_memory_env(None)
    fraction = (1.0 - margin) / runs
    return JaxMemoryEnv({PREALLOCATE: "false", MEM_FRACTION: f"{fraction:.4f}"}, (MEM_FRACTION_NEW,))


class ExitKind(str, Enum):
    OK = "ok"
    OUT_OF_MEMORY = "out-of-memory"
    FAILED = "failed"


@dataclass(frozen=True)
class TrainerExit:
    """How a trainer process ended: its exit code and the tail of its output (stdout + stderr)."""

    code: int
    output: str = ""

    @property
    def kind(self) -> ExitKind:
        return classify_exit(self.code, self.output)


# What XLA, JAX, the CUDA runtime and its libraries print when device memory runs out.
_OOM = re.compile("|".join([
    r"RESOURCE_EXHAUSTED",  # XLA's status code for every allocation failure (GPU, TPU, CPU)
    r"\bout of memory\b",  # "Out of memory while trying to allocate", CUDA "out of memory"
    r"\bOOM\b",
    r"CUDA_ERROR_OUT_OF_MEMORY", r"cudaErrorMemoryAllocation",
    r"CUBLAS_STATUS_ALLOC_FAILED", r"CUDNN_STATUS_ALLOC_FAILED", r"CUFFT_ALLOC_FAILED",
    r"ran out of memory trying to allocate",  # the BFC allocator's warning
    r"Failed to allocate request for",
]), re.IGNORECASE)


def classify_exit(code: int, output: str) -> ExitKind:
    """OK for exit 0; OUT_OF_MEMORY when the output shows a device allocation failure; else FAILED.

    A SIGKILL without such a line is FAILED, not OUT_OF_MEMORY: the kernel's OOM killer (host
    RAM) and an operator's ``kill -9`` look alike, and retrying alone on a GPU helps neither.
    """
    if code == 0:
        return ExitKind.OK
    return ExitKind.OUT_OF_MEMORY if _OOM.search(output or "") else ExitKind.FAILED


@dataclass(frozen=True)
class Attempt:
    device: str
    share: MemoryShare | None
    exit: TrainerExit


@dataclass(frozen=True)
class PackedRun:
    """Every attempt of one training under :func:`run_packed`; the last one decides."""

    label: str
    attempts: tuple[Attempt, ...]

    @property
    def exit(self) -> TrainerExit:
        return self.attempts[-1].exit

    @property
    def ok(self) -> bool:
        return self.exit.kind is ExitKind.OK

    @property
    def retried_alone(self) -> bool:
        return len(self.attempts) > 1


def run_packed(slots: PrioritySlots, label: str, priority: float, train: Callable[[Grant], TrainerExit], *,
               need_bytes: int | None = None,
               reserve_for: Callable[[], Mapping[str, float]] | None = None) -> PackedRun:
    """Run ``train`` on a packed share; if it ran out of memory beside others, once more alone.

    ``train`` starts the trainer for the grant it is given (device, share — see
    :func:`jax_memory_env`) and reports how it ended.  ``reserve_for`` is consulted only at the
    release that ends the training (a release before the retry unblocks nobody).
    """
    finished = False

    def unblocked() -> Mapping[str, float]:
        return reserve_for() if (finished and reserve_for is not None) else {}

    attempts: list[Attempt] = []
    with slots.hold(label, priority, unblocked, need_bytes=need_bytes) as grant:
        result = train(grant)
        attempts.append(Attempt(grant.device, grant.memory, result))
        # Alone already (exclusive share, or an unpacked slot that is its device's only one):
        # nothing to fall back to.
        alone = grant.memory.exclusive if grant.memory is not None else list(slots.devices).count(grant.device) == 1
        finished = alone or result.kind is not ExitKind.OUT_OF_MEMORY
    if not finished:
        with slots.hold(label, priority, unblocked, need_bytes=need_bytes, exclusive=True) as grant:
            result = train(grant)
            attempts.append(Attempt(grant.device, grant.memory, result))
            finished = True
    return PackedRun(label, tuple(attempts))
