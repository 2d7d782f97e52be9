"""Check a skill's spec against what its trained policy's completions actually did.

Why the *completing* env step matters: a plan step's net inventory delta hides what it collected
and spent again.  With the wrong prior "a table costs 1 wood" the plan hands Place_Table one wood;
the trained expert chops a second one itself and places the table, so the step's net delta is
``wood -1`` -- exactly what the wrong spec claims.  The env step that completed the plan step
(the "pivotal" one) spent 2 wood, which is the true cost.  So:

* ``consumes[k]``: what the completing step spent of ``k``;
* ``gains[k]`` (items): what the completing step yielded of ``k`` (one run's yield);
  ``gains[achievement:a]``: ``a`` unlocked at completion;
* ``requires[k]`` (items): at least what the completing step spent (nobody spends what they do
  not hold); an item the spec does not require but every completion *acquired during the step*
  and held when completing (a pickaxe the step had to make itself) is a missing requirement;
  ``requires[achievement:a]``: held at completion -- whether it is *needed* is not observable
  from successful completions, so this claim can be confirmed but never contradicted; an
  achievement another library skill gains, unlocked during every completion although the spec
  does not require it, is a missing requirement;
* ``near:b`` (gains or requires): block ``b`` in crafting range at completion, read from the
  env's nearby blocks (unobserved for an env that does not expose them).

A claim is confirmed when at least ``consistency`` of the completions agree with it; otherwise
it is contradicted, and a correction is proposed only when at least ``consistency`` of them
agree on one other value.  With fewer than ``min_completions`` completions nothing is said.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from flowrl_core.analysis.records import ClaimCheck, ClaimKind, SpecCheck, Verdict
from flowrl_core.evaluation.records import EpisodeTrace, StepTrace
from flowrl_core.skills.spec import SkillSpec, achievement_name, is_achievement, is_item, is_positional, is_view, near_block

MIN_COMPLETIONS = 5
CONSISTENCY = 0.9


def completions_of(traces: Iterable[EpisodeTrace], skill: str) -> list[StepTrace]:
    """Every completed plan-step run of ``skill`` that recorded its completing env step, except
    those whose goal held on entry: their completing step did nothing the spec describes."""
    return [s for t in traces for s in t.step_traces
            if s.skill == skill and s.completed and s.inventory_before_end is not None and not s.held_at_entry]


def achievement_producers(specs: Iterable[SkillSpec]) -> dict[str, tuple[str, ...]]:
    """Achievement name -> the skills whose spec gains it."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        for key in spec.gains:
            if is_achievement(key):
                out.setdefault(achievement_name(key), []).append(spec.name)
    return {a: tuple(s) for a, s in out.items()}


def _mode(values: Sequence[int]) -> tuple[int, float]:
    (value, n), = Counter(values).most_common(1)
    return value, n / len(values)


def _judge(skill: str, kind: ClaimKind, key: str, spec_value: int, observed: Sequence[int],
           agrees: Callable[[int], bool], consistency: float, note: str = "") -> ClaimCheck:
    value, agreement = _mode(observed)
    ok = sum(1 for v in observed if agrees(v)) / len(observed)
    if ok >= consistency:
        return ClaimCheck(skill, kind, key, spec_value, value, agreement, len(observed), Verdict.CONFIRMED, note=note)
    proposed = value if agreement >= consistency else None
    return ClaimCheck(skill, kind, key, spec_value, value, agreement, len(observed), Verdict.CONTRADICTED,
                      proposed=proposed, note=note or ("" if proposed is not None else "completions disagree"))


def check_spec(spec: SkillSpec, completions: Sequence[StepTrace], *,
               producers: Mapping[str, Sequence[str]] | None = None, min_completions: int = MIN_COMPLETIONS,
               consistency: float = CONSISTENCY) -> SpecCheck:
    """Every claim of ``spec`` judged on ``completions`` (see the module docstring)."""
    name, n = spec.name, len(completions)
    if n < max(1, min_completions):
        claims = tuple(ClaimCheck(name, kind, key, int(value), None, 0.0, n, Verdict.UNOBSERVED,
                                  note=f"{n} completion(s), fewer than {min_completions}")
                       for kind, mapping in ((ClaimKind.REQUIRES, spec.requires), (ClaimKind.CONSUMES, spec.consumes),
                                             (ClaimKind.GAINS, spec.gains))
                       for key, value in mapping.items())
        return SpecCheck(name, n, claims)
    pivots = [s.pivot_delta() or {} for s in completions]
    pre = [dict(s.inventory_before_end or {}) for s in completions]
    spent = lambda k: [max(0, -p.get(k, 0)) for p in pivots]  # noqa: E731
    yielded = lambda k: [max(0, p.get(k, 0)) for p in pivots]  # noqa: E731
    often = lambda flags: sum(flags) / n >= consistency  # noqa: E731
    claims: list[ClaimCheck] = []

    # consumes: listed items, and items every completion spent although the spec does not list them
    spent_keys = {k for p in pivots for k, v in p.items() if v < 0}
    unlisted = {k for k in spent_keys if k not in spec.consumes and often([v > 0 for v in spent(k)])}
    for key in sorted(set(k for k in spec.consumes if not is_achievement(k)) | unlisted):
        want = int(spec.consumes.get(key, 0))
        claims.append(_judge(name, ClaimKind.CONSUMES, key, want, spent(key), lambda v, w=want: v == w, consistency))

    # gains: listed items and achievements; items every completion yielded although unlisted
    gained_keys = {k for p in pivots for k, v in p.items() if v > 0}
    unlisted = {k for k in gained_keys if k not in spec.gains and often([v > 0 for v in yielded(k)])}
    for key in sorted(set(k for k in spec.gains if not is_positional(k)) | unlisted):
        want = int(spec.gains.get(key, 0))
        if is_achievement(key):
            held = [int(achievement_name(key) in s.achievements_end) for s in completions]
            claims.append(_judge(name, ClaimKind.GAINS, key, want, held, lambda v: v == 1, consistency))
        else:
            claims.append(_judge(name, ClaimKind.GAINS, key, want, yielded(key), lambda v, w=want: v == w,
                                 consistency))

    # requires (items): at least what the completing step spent; held when completing
    acquired = {k for s, b in zip(completions, pre) for k, v in b.items()
                if v > s.inventory_start.get(k, 0)}
    missing = {k for k in acquired if k not in spec.requires and k not in spec.gains
               and often([b.get(k, 0) > s.inventory_start.get(k, 0) for s, b in zip(completions, pre)])}
    missing |= {k for k in spent_keys if k not in spec.requires and often([v > 0 for v in spent(k)])}
    for key in sorted(set(k for k in spec.requires if is_item(k)) | missing):
        want = int(spec.requires.get(key, 0))
        used = spent(key)
        if any(used):
            claims.append(_judge(name, ClaimKind.REQUIRES, key, want, used, lambda v, w=want: v <= w, consistency,
                                 note="at least what the completing step spent"))
        elif key in spec.requires:
            held = [b.get(key, 0) for b in pre]
            claims.append(_judge(name, ClaimKind.REQUIRES, key, want, held, lambda v, w=want: v >= w, consistency,
                                 note="held when completing"))
        else:
            held = [b.get(key, 0) for b in pre]
            claims.append(_judge(name, ClaimKind.REQUIRES, key, 0, held, lambda v: v == 0, consistency,
                                 note="acquired during the step and held when completing"))

    # requires (achievements): held at completion; missing when another skill produces one every completion unlocked
    for key in sorted(k for k in spec.requires if is_achievement(k)):
        held = [int(achievement_name(key) in s.achievements_end) for s in completions]
        claims.append(_judge(name, ClaimKind.REQUIRES, key, int(spec.requires[key]), held, lambda v: v == 1,
                             consistency, note="held at completion (whether it is needed is not observable)"))
    own = {achievement_name(k) for k in spec.gains if is_achievement(k)}
    for ach, makers in sorted((producers or {}).items()):
        key = f"achievement:{ach}"
        if ach in own or key in spec.requires or name in makers:
            continue
        fresh = [s for s in completions if ach not in s.achievements_start]
        if len(fresh) < n * consistency:
            continue
        unlocked = [int(ach in s.achievements_gained()) for s in fresh]
        if sum(unlocked) / len(unlocked) >= consistency:
            claims.append(_judge(name, ClaimKind.REQUIRES, key, 0, unlocked, lambda v: v == 0, consistency,
                                 note=f"every completion unlocked it first ({', '.join(makers)} gains it)"))

    nearby = [set(s.nearby_end) for s in completions if s.nearby_end is not None]
    for kind, mapping in ((ClaimKind.GAINS, spec.gains), (ClaimKind.REQUIRES, spec.requires)):
        for key in sorted(k for k in mapping if is_positional(k)):
            if not nearby:
                claims.append(ClaimCheck(name, kind, key, 1, None, 0.0, n, Verdict.UNOBSERVED,
                                         note="the env does not expose nearby blocks"))
                continue
            held = [int((key if is_view(key) else near_block(key)) in blocks) for blocks in nearby]
            claims.append(_judge(name, kind, key, 1, held, lambda v: v == 1, consistency,
                                 note=f"{'in view' if is_view(key) else 'in crafting range'} at completion"))
    always = tuple(sorted(set.intersection(*nearby))) if nearby else ()
    return SpecCheck(name, n, tuple(claims), corrected_spec(spec, claims), always)


def corrected_spec(spec: SkillSpec, claims: Sequence[ClaimCheck]) -> dict[str, Any] | None:
    """``spec`` with every consistent correction applied (skill-file form), or None when there is none.

    A requirement the author tied to a consumption (``requires[k] == consumes[k]``) follows a
    corrected consumption, and a requirement is never left below what the skill consumes.
    """
    fixes = [c for c in claims if c.verdict is Verdict.CONTRADICTED and c.proposed is not None]
    if not fixes:
        return None
    maps = {kind: dict(getattr(spec, kind.value)) for kind in ClaimKind}
    for c in fixes:
        target = maps[c.kind]
        if c.proposed:
            target[c.key] = int(c.proposed)
        else:
            target.pop(c.key, None)
    requires, consumes = maps[ClaimKind.REQUIRES], maps[ClaimKind.CONSUMES]
    for key, value in consumes.items():
        if spec.requires.get(key) == spec.consumes.get(key) and key in spec.consumes:
            explicit = any(c.kind is ClaimKind.REQUIRES and c.key == key for c in fixes)
            if not explicit:
                requires[key] = value
        requires[key] = max(int(requires.get(key, 0)), int(value))
    out = spec.to_dict()
    for kind in ClaimKind:
        if maps[kind]:
            out[kind.value] = dict(sorted(maps[kind].items()))
        else:
            out.pop(kind.value, None)
    return out
