"""Skill files → validated :class:`SkillSpec` list (the graph checks live in :mod:`.graph`).

Every problem is reported as a :class:`SkillFileError` naming the file, the skill and the fix,
before anything is written or trained.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flowrl_core.errors import SkillFileError, did_you_mean
from flowrl_core.skills import vocab
from flowrl_core.skills.graph import build_graph
from flowrl_core.skills.spec import (
    ACHIEVEMENT_PREFIX,
    SkillSpec,
    achievement_name,
    is_achievement,
)
from flowrl_core.training.config import TRAIN_KEYS

SKILL_KEYS = ("name", "requires", "consumes", "gains", "depends_on", "train", "description", "predicate")
TOP_KEYS = ("skills", "name", "description", "env", "env_options")
MAX_NAME_LEN = 100



def check_name(name: Any, *, source: str | None = None, what: str = "skill name") -> str:
    """Reject names that are unsafe as path parts or confusing in the UI."""
    if not isinstance(name, str):
        raise SkillFileError(f"{what} must be a string, got {type(name).__name__} {name!r}", source=source)
    fix = "use letters, digits, spaces, '_' or '-'"
    if not name.strip():
        raise SkillFileError(f"{what} is empty; {fix}", source=source)
    if len(name) > MAX_NAME_LEN:
        raise SkillFileError(f"{what} {name[:20]!r}… is {len(name)} characters; the limit is {MAX_NAME_LEN}", source=source)
    if name != name.strip():
        raise SkillFileError(f"{what} {name!r} has leading or trailing whitespace; remove it", source=source)
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise SkillFileError(f"{what} {name!r} contains a control character; {fix}", source=source)
    if "/" in name or "\\" in name:
        raise SkillFileError(f"{what} {name!r} contains a path separator; {fix}", source=source)
    if ".." in name or name.startswith("."):
        raise SkillFileError(f"{what} {name!r} contains '..' or starts with '.'; {fix}", source=source)
    return name


def _check_counts(raw: Any, field: str, name: str, source: str | None) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SkillFileError(
            f"'{field}' must be a map of item or achievement:<name> to a positive integer, "
            f"got {type(raw).__name__}", source=source, skill=name)
    out: dict[str, int] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise SkillFileError(f"'{field}' has a non-string key {key!r}", source=source, skill=name)
        if is_achievement(key):
            ach = achievement_name(key)
            if ach not in vocab.ACHIEVEMENTS:
                raise SkillFileError(
                    f"'{field}' names unknown achievement {key!r}"
                    + did_you_mean(ach, vocab.ACHIEVEMENTS).replace("'", f"'{ACHIEVEMENT_PREFIX}", 1),
                    source=source, skill=name)
        elif key not in vocab.ITEMS:
            hint = did_you_mean(key, vocab.ITEMS)
            if not hint and key in vocab.ACHIEVEMENTS:
                hint = f" (achievements are written '{ACHIEVEMENT_PREFIX}{key}')"
            raise SkillFileError(f"'{field}' names unknown item {key!r}{hint}", source=source, skill=name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SkillFileError(
                f"'{field}.{key}' must be a positive integer, got {value!r}", source=source, skill=name)
        if value <= 0:
            raise SkillFileError(
                f"'{field}.{key}' must be a positive integer, got {value}; drop the key instead of "
                "writing 0", source=source, skill=name)
        out[key] = value
    return out


def _check_train(raw: Any, name: str, source: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SkillFileError(f"'train' must be a map of overrides, got {type(raw).__name__}", source=source, skill=name)
    for key, value in raw.items():
        if key not in TRAIN_KEYS:
            raise SkillFileError(
                f"'train' has unknown override {key!r}{did_you_mean(str(key), TRAIN_KEYS)}; known: "
                + ", ".join(TRAIN_KEYS), source=source, skill=name)
        if isinstance(value, bool) and key != "anneal_lr":
            raise SkillFileError(f"'train.{key}' must be a number, got {value!r}", source=source, skill=name)
        if not isinstance(value, (int, float, bool)) and value is not None:
            raise SkillFileError(f"'train.{key}' must be a number, got {value!r}", source=source, skill=name)
        if key == "total_timesteps" and (not isinstance(value, (int, float)) or value <= 0):
            raise SkillFileError(f"'train.total_timesteps' must be positive, got {value!r}", source=source, skill=name)
    out = dict(raw)
    if "total_timesteps" in out:
        out["total_timesteps"] = int(out["total_timesteps"])  # YAML reads 1e6 as a float
    return out


def parse_skill(raw: Any, *, source: str | None = None, position: int | None = None) -> SkillSpec:
    """One skill map → :class:`SkillSpec`, or a :class:`SkillFileError` saying what to fix."""
    where = f"skills[{position}]" if position is not None else "skill"
    if not isinstance(raw, Mapping):
        raise SkillFileError(f"{where} must be a map with at least 'name', got {type(raw).__name__}", source=source)
    if "name" not in raw:
        raise SkillFileError(f"{where} has no 'name'", source=source)
    name = check_name(raw["name"], source=source)
    for key in raw:
        if key not in SKILL_KEYS:
            raise SkillFileError(
                f"unknown key {key!r}{did_you_mean(str(key), SKILL_KEYS)}; allowed: " + ", ".join(SKILL_KEYS),
                source=source, skill=name)
    requires = _check_counts(raw.get("requires"), "requires", name, source)
    consumes = _check_counts(raw.get("consumes"), "consumes", name, source)
    gains = _check_counts(raw.get("gains"), "gains", name, source)
    depends = raw.get("depends_on") or []
    if isinstance(depends, str) or not isinstance(depends, list):
        raise SkillFileError("'depends_on' must be a list of skill names", source=source, skill=name)
    for dep in depends:
        check_name(dep, source=source, what=f"skill {name!r} depends_on entry")
    if len(set(depends)) != len(depends):
        raise SkillFileError("'depends_on' lists a skill twice", source=source, skill=name)
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise SkillFileError("'description' must be a string", source=source, skill=name)
    predicate = raw.get("predicate")
    if predicate is not None and (not isinstance(predicate, str) or ":" not in predicate):
        raise SkillFileError(
            f"'predicate' must be an import path 'package.module:function', got {predicate!r}",
            source=source, skill=name)
    if not gains and predicate is None:
        raise SkillFileError(
            "'gains' is empty, so nothing tells when the skill is done; add what one run yields "
            "(e.g. gains: {wood: 1}) or a 'predicate' import path", source=source, skill=name)
    return SkillSpec(
        name=name, requires=requires, consumes=consumes, gains=gains, depends_on=tuple(depends),
        train=_check_train(raw.get("train"), name, source), description=description, predicate=predicate,
    )


def parse_skills(data: Any, *, source: str | None = None) -> list[SkillSpec]:
    """A decoded skill file (``{skills: [...]}``) → validated specs, graph checks included."""
    if not isinstance(data, Mapping):
        raise SkillFileError("the file must hold a map with a top-level 'skills:' list", source=source)
    for key in data:
        if key not in TOP_KEYS:
            raise SkillFileError(
                f"unknown top-level key {key!r}{did_you_mean(str(key), TOP_KEYS)}; allowed: " + ", ".join(TOP_KEYS),
                source=source)
    raw_skills = data.get("skills")
    if not isinstance(raw_skills, list) or not raw_skills:
        raise SkillFileError("'skills:' must be a non-empty list of skills", source=source)
    specs = [parse_skill(raw, source=source, position=i) for i, raw in enumerate(raw_skills)]
    build_graph(specs, source=source)  # raises on every graph-level problem
    return specs


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (plain YAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def decode_skill_text(text: str, *, source: str, fmt: str) -> Any:
    try:
        if fmt == "json":
            return json.loads(text, object_pairs_hook=no_duplicate_keys)
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SkillFileError(f"not valid YAML: {line}{problem}", source=source) from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise SkillFileError(f"not valid JSON: {exc}", source=source) from None


def load_skill_file(path: str | Path) -> list[SkillSpec]:
    """Read and validate a ``.yaml``/``.yml``/``.json`` skill file."""
    return load_skill_doc(path)[0]


def load_skill_doc(path: str | Path) -> tuple[list[SkillSpec], dict[str, Any]]:
    """Specs plus the file's defaults: ``env`` (a name) and ``env_options`` (a map)."""
    p = Path(path)
    source = str(path)
    suffix = p.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise SkillFileError("skill files must end in .yaml, .yml or .json", source=source)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SkillFileError("no such file; check the path", source=source) from None
    except IsADirectoryError:
        raise SkillFileError("is a directory, not a skill file", source=source) from None
    except UnicodeDecodeError:
        raise SkillFileError("is not UTF-8 text", source=source) from None
    data = decode_skill_text(text, source=source, fmt="json" if suffix == ".json" else "yaml")
    specs = parse_skills(data, source=source)
    defaults: dict[str, Any] = {}
    if data.get("env") is not None:
        if not isinstance(data["env"], str):
            raise SkillFileError("'env' must be an environment name", source=source)
        defaults["env"] = data["env"]
    if data.get("env_options") is not None:
        if not isinstance(data["env_options"], Mapping):
            raise SkillFileError("'env_options' must be a map of environment settings", source=source)
        defaults["env_options"] = dict(data["env_options"])
    return specs, defaults


