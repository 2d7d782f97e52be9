"""Training configuration: profile → flow overrides → the skill file's ``train:`` map.

Resolved for every skill before anything trains, so a typo in an override fails the flow
up front instead of one skill an hour in.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowrl_core.errors import FlowRLError, did_you_mean, short
from flowrl_core.skills.plan import DEFAULT_STEP_GOAL, PLAN_ORDERS, STEP_GOALS

PROFILES = ("cpu", "tiny", "default")
FRONTIER_FROM = ("last_step", "failed_step")  # PPOConfig.frontier_from


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters; the defaults are the reference (Craftax-scale, GPU) settings."""

    num_envs: int = 1024
    num_steps: int = 64  # rollout length per update
    total_timesteps: int = 10_000_000  # frames; num_updates = total // (num_envs * num_steps)
    lr: float = 2e-4
    anneal_lr: bool = True  # linear decay to 0 over the run's minibatch steps
    update_epochs: int = 4
    num_minibatches: int = 8
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 1.0  # per expert
    width: int = 512  # hidden units per layer, actor and critic alike
    depth: int = 3  # hidden layers
    seed: int = 0
    checkpoint_every: int = 50  # updates between checkpoints (0: only at the end)
    success_threshold: float | None = None  # stop once two updates in a row reach it (after one horizon)
    early_stop_min_episodes: int = 32  # ...over at least this many finished episodes
    updates_per_call: int = 1  # updates fused into one jitted call (metrics still per update)
    reset_bank_size: int | None = None  # None: 2 * num_envs start states
    bank_refresh: int | None = None  # start states regenerated per update; None: num_envs // 4
    shaping: float = 0.1  # per item of progress toward a step's gains (see predicates)
    completion_reward: float = 1.0  # per completed plan step
    block_size: int | None = None  # MoE dispatch block; None: moe.default_block_size
    # Steps one attempt may take before it ends as a failure (training, early stopping and
    # evaluation alike); None: env.step_allowance x the plan's runs (flowrl_core.training.budget).
    max_steps: int | None = None
    # Fraction of new episodes that start from a saved "frontier" state (an env that had just
    # finished every prerequisite step) instead of a fresh world; 0 = off.  Never in evaluation.
    frontier_reset_prob: float = 0.0
    frontier_buffer_size: int | None = None  # frontier states kept; None: num_envs
    # Which saved states frontier resets start from (flowrl_core.training.ppo, "Frontier resets"):
    # "last_step" -- states that had just entered the plan's last step (the new skill's own);
    # "failed_step" -- an episode that failed restarts, in the same env, from the state in which
    # it entered the step it failed in, so practice goes to whichever step fails.
    frontier_from: str = "last_step"
    # Weight of the change in the agent's health, food and drink added to every step's
    # reward (a death counts as losing all health); 0 = off.  Needs an env with vitals (Craftax):
    # flowrl_core.training.survival.
    survival_shaping: float = 0.0
    # Episodes the analyse subtask rolls out after training (trained policy and random baseline
    # alike; flowrl_core.analysis); 0 turns the analysis off.  Not a PPO setting: the trainer ignores it.
    analysis_episodes: int = 32
    # Order of the skill's execution plan (flowrl_core.skills.plan): "just_in_time" gathers each
    # item right before the step that uses it; "gather_first" moves every gathering run as early
    # as the plan allows.  Not a PPO setting: setup plans with it, the trainer ignores it.
    plan_order: str = "just_in_time"
    # What a plan step's item target counts from (flowrl_core.training.predicates): "held" (the
    # default) -- the inventory the plan expects there, so items picked up earlier (coal found on
    # the way to the iron) complete a later step at once; "gained" -- the inventory on entering
    # the step, so only what the step itself collects counts (every run before the setting existed).
    step_goal: str = DEFAULT_STEP_GOAL
    # Whether the run also trains the experts of the skill's prerequisites, which its plan routes
    # through (the reference system's rule, and the default).  False freezes them: they act with
    # the versions setup seeded, get no gradient, and the merge proposes only the skill's own
    # expert -- so a skill whose own reward is rare (Collect_Diamond) cannot wear down the experts
    # its prerequisites trained under the frame-count rule.
    train_prerequisites: bool = True

    def __post_init__(self) -> None:
        for name in ("num_envs", "num_steps", "update_epochs", "num_minibatches", "width", "depth",
                     "updates_per_call"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PPOConfig.{name} must be a positive int, got {value!r}")
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(f"num_envs * num_steps = {self.num_envs * self.num_steps} is not divisible by "
                             f"num_minibatches = {self.num_minibatches}")
        if self.checkpoint_every < 0:
            raise ValueError("PPOConfig.checkpoint_every must be >= 0")
        if self.success_threshold is not None and not 0.0 < self.success_threshold <= 1.0:
            raise ValueError("PPOConfig.success_threshold must be in (0, 1] or None")
        for name in ("max_steps", "frontier_buffer_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"PPOConfig.{name} must be a positive int or None, got {value!r}")
        if self.frontier_from not in FRONTIER_FROM:
            raise ValueError(f"PPOConfig.frontier_from must be one of {', '.join(FRONTIER_FROM)}, "
                             f"got {self.frontier_from!r}")
        if self.plan_order not in PLAN_ORDERS:
            raise ValueError(f"PPOConfig.plan_order must be one of {', '.join(PLAN_ORDERS)}, "
                             f"got {self.plan_order!r}")
        if self.step_goal not in STEP_GOALS:
            raise ValueError(f"PPOConfig.step_goal must be one of {', '.join(STEP_GOALS)}, got {self.step_goal!r}")
        if not 0.0 <= self.frontier_reset_prob < 1.0:
            raise ValueError("PPOConfig.frontier_reset_prob must be in [0, 1) (1 would never start a fresh "
                             f"episode again), got {self.frontier_reset_prob!r}")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return int(self.total_timesteps) // self.batch_size

    @classmethod
    def cpu_profile(cls, **overrides: Any) -> "PPOConfig":
        """Sized for a 2-core CPU: 64 envs x 32 steps, 3 x 128 networks, 1M frames."""
        base = dict(num_envs=64, num_steps=32, total_timesteps=1_000_000, lr=1e-3, num_minibatches=4,
                    width=128, depth=3, checkpoint_every=25)
        return cls(**{**base, **overrides})

    @classmethod
    def tiny_profile(cls, **overrides: Any) -> "PPOConfig":
        """Smoke tests: 16 envs x 16 steps, 2 x 32 networks, a few updates."""
        base = dict(num_envs=16, num_steps=16, total_timesteps=16 * 16 * 4, lr=1e-3, update_epochs=2,
                    num_minibatches=2, width=32, depth=2, checkpoint_every=2)
        return cls(**{**base, **overrides})


# What a skill file's ``train:`` map may set: every PPOConfig field.
TRAIN_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PPOConfig))
# The settings that are switches (true/false).
SWITCHES: frozenset[str] = frozenset(f.name for f in dataclasses.fields(PPOConfig) if str(f.type) == "bool")
# The settings that take a word, not a number, and the words each allows.
CHOICES: dict[str, tuple[str, ...]] = {"frontier_from": FRONTIER_FROM, "plan_order": PLAN_ORDERS,
                                        "step_goal": STEP_GOALS}


class ConfigError(FlowRLError, ValueError):
    pass


def base_config(profile: str) -> PPOConfig:
    if profile == "cpu":
        return PPOConfig.cpu_profile()
    if profile == "tiny":
        return PPOConfig.tiny_profile()
    if profile == "default":
        return PPOConfig()
    raise ConfigError(f"unknown training profile {profile!r}; choose one of {', '.join(PROFILES)}")


# Every setting's allowed range, checked before anything is written: a NaN, an infinity or a
# nonsensical value (lr=-1, gamma=inf, clip_eps=-3, total_timesteps=1e30) is refused with the
# range, not discovered as a NaN expert an hour later.  (lo, hi, lo_open): lo < v (lo_open) or
# lo <= v, and v <= hi.  The README's table of training settings lists the same ranges.
BOUNDS: dict[str, tuple[float, float, bool]] = {
    "num_envs": (1, 65_536, False), "num_steps": (1, 100_000, False),
    "total_timesteps": (1, 1e12, False), "lr": (0.0, 1.0, True), "update_epochs": (1, 1_000, False),
    "num_minibatches": (1, 1_000_000, False), "gamma": (0.0, 1.0, True), "gae_lambda": (0.0, 1.0, False),
    "clip_eps": (0.0, 10.0, True), "ent_coef": (0.0, 10.0, False), "vf_coef": (0.0, 100.0, False),
    "max_grad_norm": (0.0, 1e6, True), "width": (1, 65_536, False), "depth": (1, 64, False),
    "seed": (0, 2**31 - 1, False), "checkpoint_every": (0, 1e9, False), "success_threshold": (0.0, 1.0, True),
    "early_stop_min_episodes": (0, 1e9, False), "updates_per_call": (1, 10_000, False),
    "reset_bank_size": (1, 10_000_000, False), "bank_refresh": (0, 10_000_000, False),
    "shaping": (0.0, 100.0, False), "completion_reward": (0.0, 1_000.0, False), "block_size": (1, 1_000_000, False),
    "max_steps": (1, 10_000_000, False), "frontier_reset_prob": (0.0, 1.0, False),
    "frontier_buffer_size": (1, 1_000_000, False), "survival_shaping": (0.0, 100.0, False),
    "analysis_episodes": (0, 100_000, False),
}


def planned_frames(config: Mapping[str, Any] | PPOConfig) -> int:
    """Frames a run with this config trains: whole updates only, so the budget rounded down.

    The one rule both the trainer (how many updates) and setup (is the skill done?) use: a
    100,000-frame budget at 2,048 frames an update trains 48 updates = 98,304 frames, and a skill
    that trained that much is done — a rerun must not train it again.
    """
    cfg = config if isinstance(config, PPOConfig) else PPOConfig(**config)
    return cfg.num_updates * cfg.batch_size


def resolve_config(profile: str, overrides: Mapping[str, Any] | None = None,
                   skill_train: Mapping[str, Any] | None = None, *, skill: str = "") -> dict[str, Any]:
    """JSON-ready config dict for one skill: profile, then the skill file's ``train:``, then
    ``overrides`` (the command line's ``--set`` / the Run form) — later layers win, so a user can
    shrink any run without editing its file."""
    config = base_config(profile)
    fields = {f.name for f in dataclasses.fields(config)}
    merged: dict[str, Any] = {}
    for layer_name, layer in (("the skill file's train:", skill_train or {}), ("--set/overrides", overrides or {})):
        for key, value in layer.items():
            if key not in fields:
                raise ConfigError(f"{_who(skill)}unknown training setting {short(key)} in {layer_name}"
                                  f"{did_you_mean(str(key), sorted(fields))}")
            merged[key] = value
    types = {f.name: str(f.type) for f in dataclasses.fields(config)}
    for key, value in list(merged.items()):
        _check_type(key, value, types[key], skill)
        if types[key].startswith("int") and isinstance(value, float):
            merged[key] = int(value)  # YAML and JSON read 1e6 as a float
    try:
        config = dataclasses.replace(config, **merged)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_who(skill)}invalid training settings: {exc}") from None
    out = dataclasses.asdict(config)
    for key, value in out.items():
        _check_range(key, value, skill)
    if config.num_minibatches > config.batch_size:
        raise ConfigError(f"{_who(skill)}num_minibatches={config.num_minibatches} exceeds num_envs * num_steps = "
                          f"{config.batch_size}")
    if config.num_updates < 1:
        raise ConfigError(f"{_who(skill)}total_timesteps={config.total_timesteps} is less than one update "
                          f"(num_envs * num_steps = {config.batch_size} frames); raise it or shrink the batch")
    return out


def _who(skill: str) -> str:
    return f"skill {skill!r}: " if skill else ""


def _check_range(key: str, value: Any, skill: str) -> None:
    if value is None or isinstance(value, bool) or key not in BOUNDS:
        return
    lo, hi, lo_open = BOUNDS[key]
    if not math.isfinite(float(value)) or (value <= lo if lo_open else value < lo) or value > hi:
        left = "(" if lo_open else "["
        raise ConfigError(f"{_who(skill)}training setting {key}={short(value)} is out of range {left}{lo:g}, {hi:g}]")


def _check_type(key: str, value: Any, annotation: str, skill: str) -> None:
    """Catch ``lr: fast`` now rather than as a TypeError inside a jitted update an hour later."""
    optional = "None" in annotation
    if value is None:
        if optional:
            return
        raise ConfigError(f"{_who(skill)}training setting {key!r} cannot be null")
    if annotation.startswith("bool"):
        ok = isinstance(value, bool)
    elif annotation.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok and isinstance(value, float) and value.is_integer():
            return  # YAML and JSON read 1e6 as a float (resolve_config makes it an int)
    elif annotation.startswith("float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif key in CHOICES:
        if value not in CHOICES[key]:
            raise ConfigError(f"{_who(skill)}training setting {key!r} must be one of {', '.join(CHOICES[key])}, "
                              f"got {short(value)}")
        return
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{_who(skill)}training setting {key!r} must be {annotation}, got {short(value)}")
