"""Skill files → validated :class:`SkillSpec` list (the graph checks live in :mod:`.graph`).

Every problem is reported as a :class:`SkillFileError` naming the file, the skill and the fix,
before anything is written or trained.
"""

from __future__ import annotations

import json
import math
import stat
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flowrl_core.errors import SkillFileError, did_you_mean, short
from flowrl_core.skills import vocab
from flowrl_core.skills.graph import build_graph
from flowrl_core.skills.spec import (
    ACHIEVEMENT_PREFIX,
    SkillSpec,
    achievement_name,
    is_achievement,
    is_near,
    is_positional,
    near_block,
)
from flowrl_core.training.config import CHOICES, SWITCHES, TRAIN_KEYS

SKILL_KEYS = ("name", "requires", "consumes", "gains", "depends_on", "train", "description", "predicate")
TOP_KEYS = ("skills", "name", "description", "env", "env_options", "trainer")
MAX_NAME_LEN = 100
# Bounds on what a skill file may make flowrl read or build (README "Skill files"): a FIFO, a
# device, a huge file or a ~500-byte YAML alias bomb must be refused at once, not read for minutes.
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_SKILLS = 100_000
MAX_YAML_NODES = 2_000_000  # nodes after alias expansion (a 10,000-skill file has ~200,000)
MAX_YAML_ALIASES = 1_000


def _scripts(name: str) -> set[str]:
    """Scripts of the letters in ``name`` (LATIN, CYRILLIC, GREEK, CJK, ...), from Unicode names."""
    out = set()
    for c in unicodedata.normalize("NFKC", name):
        if c.isalpha():
            out.add(unicodedata.name(c, "UNKNOWN").split(" ")[0])
    return out


def check_name(name: Any, *, source: str | None = None, what: str = "skill name") -> str:
    """Reject names that are unsafe as path parts or confusing in the UI.

    Letters from more than one script are refused: a Cyrillic "о" inside "Cоllect_Wood" looks
    identical to the Latin one and would make a second, invisible skill.
    """
    if not isinstance(name, str):
        raise SkillFileError(f"{what} must be a string, got {type(name).__name__} {short(name)}", source=source)
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
    scripts = _scripts(name)
    if len(scripts) > 1:
        raise SkillFileError(f"{what} {name!r} mixes letters of several scripts ({', '.join(sorted(scripts))}), "
                             f"which look alike but differ; {fix}", source=source)
    return name


def _check_counts(raw: Any, field: str, name: str, source: str | None) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SkillFileError(
            f"'{field}' must be a map of item, achievement:<name>, near:<block> or view:<block> to a positive integer, "
            f"got {type(raw).__name__}", source=source, skill=name)
    out: dict[str, int] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise SkillFileError(f"'{field}' has a non-string key {short(key)}", source=source, skill=name)
        if is_achievement(key):
            ach = achievement_name(key)
            if ach not in vocab.ACHIEVEMENTS:
                raise SkillFileError(
                    f"'{field}' names unknown achievement {short(key)}"
                    + did_you_mean(ach, vocab.ACHIEVEMENTS).replace("'", f"'{ACHIEVEMENT_PREFIX}", 1),
                    source=source, skill=name)
        elif is_positional(key):
            block, prefix = near_block(key), key[:key.index(":") + 1]
            where = "in crafting range" if is_near(key) else "in view"
            if block not in vocab.BLOCKS:
                raise SkillFileError(
                    f"'{field}' names unknown block {short(key)}"
                    + did_you_mean(block, vocab.BLOCKS).replace("'", f"'{prefix}", 1),
                    source=source, skill=name)
            if field == "consumes":
                raise SkillFileError(
                    f"'consumes' lists {short(key)}, but a block {where} is not used up; move it to "
                    "'requires'", source=source, skill=name)
            if value != 1:
                raise SkillFileError(f"'{field}.{key}' must be 1 (the block is {where} or not), got "
                                     f"{short(value)}", source=source, skill=name)
        elif key not in vocab.ITEMS:
            hint = did_you_mean(key, vocab.ITEMS)
            if not hint and key in vocab.ACHIEVEMENTS:
                hint = f" (achievements are written '{ACHIEVEMENT_PREFIX}{key}')"
            raise SkillFileError(f"'{field}' names unknown item {short(key)}{hint}", source=source, skill=name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SkillFileError(
                f"'{field}.{key}' must be a positive integer, got {short(value)}", source=source, skill=name)
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
                f"'train' has unknown override {short(key)}{did_you_mean(str(key), TRAIN_KEYS)}; known: "
                + ", ".join(TRAIN_KEYS), source=source, skill=name)
        if key in CHOICES:
            if value not in CHOICES[key]:
                raise SkillFileError(f"'train.{key}' must be one of {', '.join(CHOICES[key])}, got {short(value)}",
                                     source=source, skill=name)
            continue
        if key in SWITCHES:
            if not isinstance(value, bool):
                raise SkillFileError(f"'train.{key}' must be true or false, got {short(value)}", source=source,
                                     skill=name)
            continue
        if isinstance(value, bool):
            raise SkillFileError(f"'train.{key}' must be a number, got {short(value)}", source=source, skill=name)
        if not isinstance(value, (int, float, bool)) and value is not None:
            raise SkillFileError(f"'train.{key}' must be a number, got {short(value)}", source=source, skill=name)
        if isinstance(value, float) and not math.isfinite(value):
            raise SkillFileError(f"'train.{key}' must be finite, got {short(value)}", source=source, skill=name)
        if key == "total_timesteps" and (not isinstance(value, (int, float)) or value <= 0):
            raise SkillFileError(f"'train.total_timesteps' must be positive, got {short(value)}", source=source, skill=name)
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
                f"unknown key {short(key)}{did_you_mean(str(key), SKILL_KEYS)}; allowed: " + ", ".join(SKILL_KEYS),
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
            f"'predicate' must be an import path 'package.module:function', got {short(predicate)}",
            source=source, skill=name)
    if not gains and predicate is None:
        raise SkillFileError(
            "'gains' is empty, so nothing tells when the skill is done; add what one run yields "
            "(e.g. gains: {wood: 1}) or a 'predicate' import path", source=source, skill=name)
    return SkillSpec(
        name=name, requires=requires, consumes=consumes, gains=gains, depends_on=tuple(depends),
        train=_check_train(raw.get("train"), name, source), description=description, predicate=predicate,
    )


@dataclass(frozen=True)
class SkillFileDoc:
    """A decoded and validated skill file: its specs and the defaults it sets for a run."""

    source: str
    specs: tuple[SkillSpec, ...]
    env: str | None = None
    env_options: Mapping[str, Any] = field(default_factory=dict)
    trainer: str | None = None
    name: str | None = None

    def to_data(self) -> dict[str, Any]:
        """The JSON form (``{skills: [...], env, ...}``) a flow parameter or a child flow run takes."""
        out: dict[str, Any] = {"skills": [s.to_dict() for s in self.specs]}
        for key in ("env", "trainer", "name"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.env_options:
            out["env_options"] = dict(self.env_options)
        return out


def parse_skills(data: Any, *, source: str | None = None) -> list[SkillSpec]:
    """A decoded skill file (``{skills: [...]}``) → validated specs, graph checks included."""
    return list(parse_skill_doc(data, source=source).specs)


def parse_skill_doc(data: Any, *, source: str | None = None) -> SkillFileDoc:
    """A decoded skill file → :class:`SkillFileDoc` (specs, graph checks and file defaults)."""
    if not isinstance(data, Mapping):
        raise SkillFileError("the file must hold a map with a top-level 'skills:' list", source=source)
    for key in data:
        if key not in TOP_KEYS:
            raise SkillFileError(
                f"unknown top-level key {short(key)}{did_you_mean(str(key), TOP_KEYS)}; allowed: " + ", ".join(TOP_KEYS),
                source=source)
    raw_skills = data.get("skills")
    if not isinstance(raw_skills, list) or not raw_skills:
        raise SkillFileError("'skills:' must be a non-empty list of skills", source=source)
    if len(raw_skills) > MAX_SKILLS:
        raise SkillFileError(f"{len(raw_skills)} skills; the limit is {MAX_SKILLS}", source=source)
    specs = [parse_skill(raw, source=source, position=i) for i, raw in enumerate(raw_skills)]
    build_graph(specs, source=source)  # raises on every graph-level problem
    env, env_options, trainer, name = data.get("env"), data.get("env_options"), data.get("trainer"), data.get("name")
    if env is not None and not isinstance(env, str):
        raise SkillFileError(f"'env' must be an environment name, got {short(env)}", source=source)
    if env_options is not None and not isinstance(env_options, Mapping):
        raise SkillFileError(f"'env_options' must be a map of environment settings, got {short(env_options)}",
                             source=source)
    if trainer is not None and not isinstance(trainer, str):
        raise SkillFileError(f"'trainer' must be a trainer name or import path, got {short(trainer)}", source=source)
    if name is not None and not isinstance(name, str):
        raise SkillFileError(f"'name' must be a string, got {short(name)}", source=source)
    return SkillFileDoc(source=source or "skills", specs=tuple(specs), env=env, env_options=dict(env_options or {}),
                        trainer=trainer, name=name)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (plain YAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {short(key)}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _expanded_size(root: yaml.Node, source: str) -> int:
    """Nodes the document has once every alias is expanded, computed without expanding them.

    PyYAML shares an aliased node instead of copying it, so a few hundred bytes of nested
    aliases build an object that is small in memory but astronomically large once printed or
    serialised (``job.json``).  Sizes are memoised per node, so this is linear in the text.
    """
    sizes: dict[int, int] = {}
    aliases = 0
    seen_ids: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        if children_done:
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_NODES:
                raise SkillFileError(f"expands to over {MAX_YAML_NODES:,} YAML nodes (anchors and aliases "
                                     "multiply it); write the file without nested aliases", source=source)
            continue
        if key in seen_ids:  # a node reached again before its size is known: shared by an alias
            aliases += 1
        seen_ids.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in seen_ids or id(child) in sizes:
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise SkillFileError(f"uses over {MAX_YAML_ALIASES} YAML aliases; expand them", source=source)
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _load_yaml(text: str, source: str) -> Any:
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {short(key)}")
        out[key] = value
    return out


def decode_skill_text(text: str, *, source: str, fmt: str) -> Any:
    try:
        if fmt == "json":
            return json.loads(text, object_pairs_hook=no_duplicate_keys)
        return _load_yaml(text, source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SkillFileError(f"not valid YAML: {line}{str(problem)[:200]}", source=source) from None
    except RecursionError:
        raise SkillFileError("nests too deeply to read", source=source) from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise SkillFileError(f"not valid JSON: {str(exc)[:200]}", source=source) from None


def read_skill_text(path: str | Path) -> str:
    """The file's text, refusing what is not a small regular UTF-8 file before reading it."""
    p = Path(path)
    source = str(path)
    if p.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise SkillFileError("skill files must end in .yaml, .yml or .json", source=source)
    try:
        info = p.stat()
    except FileNotFoundError:
        raise SkillFileError("no such file; check the path", source=source) from None
    except OSError as exc:
        raise SkillFileError(f"cannot be read ({exc.strerror})", source=source) from None
    if stat.S_ISDIR(info.st_mode):
        raise SkillFileError("is a directory, not a skill file", source=source)
    if not stat.S_ISREG(info.st_mode):
        raise SkillFileError("is not a regular file (a pipe, device or socket); pass a file", source=source)
    if info.st_size > MAX_FILE_BYTES:
        raise SkillFileError(f"is {info.st_size:,} bytes; skill files are limited to {MAX_FILE_BYTES:,}", source=source)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SkillFileError(f"cannot be read ({exc.strerror})", source=source) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SkillFileError(f"is over {MAX_FILE_BYTES:,} bytes; skill files are limited to that", source=source)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SkillFileError("is not UTF-8 text", source=source) from None


def load_skill_file(path: str | Path) -> list[SkillSpec]:
    """Read and validate a ``.yaml``/``.yml``/``.json`` skill file."""
    return list(read_skill_file(path).specs)


def read_skill_file(path: str | Path) -> SkillFileDoc:
    """Read, bound, decode and validate a skill file: the one parse of it a run makes."""
    text = read_skill_text(path)
    fmt = "json" if Path(path).suffix.lower() == ".json" else "yaml"
    return parse_skill_doc(decode_skill_text(text, source=str(path), fmt=fmt), source=str(path))
