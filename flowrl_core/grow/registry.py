"""Proposers by name: a new proposer is one module and one line in :data:`PROPOSERS`."""

from __future__ import annotations

from typing import Any, Callable

from flowrl_core.grow.library import Proposer, ProposerError
from flowrl_core.plugins import ImportPathError, resolve_callable


def _file(**kwargs: Any) -> Proposer:
    from flowrl_core.grow.file_proposer import FileProposer

    return FileProposer(**kwargs)


def _curriculum(**kwargs: Any) -> Proposer:
    from flowrl_core.grow.curriculum import CurriculumProposer

    return CurriculumProposer(**kwargs)


def _llm(**kwargs: Any) -> Proposer:
    from flowrl_core.grow.llm import LLMProposer

    return LLMProposer.from_env(**kwargs)


PROPOSERS: dict[str, Callable[..., Proposer]] = {"file": _file, "curriculum": _curriculum, "llm": _llm}


def load_proposer(spec: str, **kwargs: Any) -> Proposer:
    """A built-in proposer by name, or ``pkg.module:factory`` (called with ``kwargs``)."""
    if spec in PROPOSERS:
        return PROPOSERS[spec](**kwargs)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ProposerError(f"unknown proposer {spec!r}; use one of {', '.join(PROPOSERS)} or an import "
                            "path 'package.module:factory'")
    try:
        factory = resolve_callable(spec, "factory")
    except ImportPathError as exc:
        raise ProposerError(f"proposer {spec!r}: {exc}") from None
    proposer = factory(**kwargs)
    if not callable(getattr(proposer, "propose", None)):
        raise ProposerError(f"proposer {spec!r} returned a {type(proposer).__name__} without a "
                            "propose(view) method")
    return proposer
