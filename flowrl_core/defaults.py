"""The defaults every entry point shares (CLI, flows, deployments), defined once.

The embedded default — what `flowrl run FILE` uses with no options — is a local store in the
current folder, the built-in gridworld and the CPU-sized training profile.
"""

from __future__ import annotations

DEFAULT_STORE = "./flowrl-store"
DEFAULT_ENV = "gridworld"
DEFAULT_PROFILE = "cpu"
