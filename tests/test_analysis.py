"""Trajectory analysis's pure functions on hand-built traces: spec checks and failure analysis.

Fast (no JAX): every trace is written out by hand, so each test states exactly what the policy
did and what the analysis must conclude from it.
"""

from __future__ import annotations

import json

import pytest

from flowrl_core.analysis import (
    AnalysisRecord,
    AnalysisStatus,
    ClaimKind,
    Verdict,
    achievement_producers,
    analyse_failures,
    check_spec,
    completions_of,
)
from flowrl_core.evaluation.records import EndReason, EpisodeTrace, StepTrace
from flowrl_core.skills.parsing import parse_skill
from flowrl_core.skills.spec import SkillSpec

WOOD = SkillSpec("Collect_Wood", gains={"wood": 1})
# the wrong prior: a table costs 2 wood in Craftax-Classic and the gridworld, not 1
TABLE_WRONG = SkillSpec("Place_Table", requires={"wood": 1}, consumes={"wood": 1},
                        gains={"achievement:place_table": 1})
TABLE_RIGHT = SkillSpec("Place_Table", requires={"wood": 2}, consumes={"wood": 2},
                        gains={"achievement:place_table": 1})
PICKAXE_MISSING = SkillSpec("Make_Wood_Pickaxe", requires={"wood": 1}, consumes={"wood": 1},
                            gains={"wood_pickaxe": 1})


def step(index, skill, *, start, pre, end, ach_start=(), ach_end=(), completed=True, count=1, t0=0, t1=5,
         nearby=None):
    return StepTrace(index, skill, count, completed, t0, t1, start, end, tuple(ach_start), tuple(ach_end), nearby, pre)


def table_episode(e, *, chopped_in_step=True):
    """Collect_Wood×1 then Place_Table: the expert chops a second wood itself, then places (spending 2)."""
    wood = step(0, "Collect_Wood", start={}, pre={}, end={"wood": 1}, ach_end=("collect_wood",), t1=3)
    pre = {"wood": 2} if chopped_in_step else {"wood": 2}
    table = step(1, "Place_Table", start={"wood": 1}, pre=pre, end={}, ach_start=("collect_wood",),
                 ach_end=("collect_wood", "place_table"), t0=3, t1=9, nearby=("grass", "tree"))
    return EpisodeTrace(e, True, 9, EndReason.SUCCESS, True, 2, (wood, table), {}, ("collect_wood", "place_table"),
                        ("do", "place_table"))


def test_wrong_consumption_is_contradicted_and_corrected_although_the_net_delta_agrees():
    traces = [table_episode(e) for e in range(10)]
    done = completions_of(traces, "Place_Table")
    assert [s.inventory_delta() for s in done] == [{"wood": -1}] * 10  # the net delta hides the true cost
    check = check_spec(TABLE_WRONG, done)
    by = {(c.kind, c.key): c for c in check.claims}
    consumes = by[(ClaimKind.CONSUMES, "wood")]
    assert consumes.verdict is Verdict.CONTRADICTED and consumes.observed == 2 and consumes.proposed == 2
    requires = by[(ClaimKind.REQUIRES, "wood")]
    assert requires.verdict is Verdict.CONTRADICTED and requires.proposed == 2
    assert by[(ClaimKind.GAINS, "achievement:place_table")].verdict is Verdict.CONFIRMED
    assert len(check.contradicted) == 2
    assert parse_skill(check.corrected) == TABLE_RIGHT
    assert check.nearby_always == ("grass", "tree")


def test_a_right_spec_is_confirmed_and_gets_no_correction():
    traces = [table_episode(e) for e in range(10)]
    check = check_spec(TABLE_RIGHT, completions_of(traces, "Place_Table"))
    assert {c.verdict for c in check.claims} == {Verdict.CONFIRMED} and check.corrected is None
    wood = check_spec(WOOD, completions_of(traces, "Collect_Wood"))
    assert [(c.kind, c.key, c.verdict) for c in wood.claims] == [(ClaimKind.GAINS, "wood", Verdict.CONFIRMED)]


def test_too_few_completions_say_nothing():
    check = check_spec(TABLE_WRONG, completions_of([table_episode(e) for e in range(3)], "Place_Table"))
    assert {c.verdict for c in check.claims} == {Verdict.UNOBSERVED} and check.corrected is None
    assert check.completions == 3


def test_inconsistent_completions_contradict_without_a_proposal():
    traces = [table_episode(e) for e in range(6)]
    cheap = step(1, "Place_Table", start={"wood": 1}, pre={"wood": 1}, end={}, ach_start=("collect_wood",),
                 ach_end=("collect_wood", "place_table"))
    traces += [EpisodeTrace(10 + e, True, 5, EndReason.SUCCESS, True, 2, (traces[0].step_traces[0], cheap), {}, (), ())
               for e in range(4)]
    check = check_spec(TABLE_WRONG, completions_of(traces, "Place_Table"))
    consumes = next(c for c in check.claims if c.kind is ClaimKind.CONSUMES)
    assert consumes.verdict is Verdict.CONTRADICTED and consumes.proposed is None and consumes.agreement == 0.6
    assert check.corrected is None


def test_missing_requirements_item_and_achievement():
    """Make_Wood_Pickaxe without its table: every completion placed a table first (an achievement
    Place_Table gains) -- a missing requirement; a gains count that is wrong is corrected too."""
    specs = [WOOD, TABLE_RIGHT, PICKAXE_MISSING]
    steps = [step(1, "Make_Wood_Pickaxe", start={"wood": 1}, pre={"wood": 1}, end={"wood_pickaxe": 1},
                  ach_start=("collect_wood",), ach_end=("collect_wood", "place_table", "make_wood_pickaxe"))
             for _ in range(8)]
    traces = [EpisodeTrace(e, True, 9, EndReason.SUCCESS, True, 2, (s,), {}, (), ()) for e, s in enumerate(steps)]
    check = check_spec(PICKAXE_MISSING, completions_of(traces, "Make_Wood_Pickaxe"),
                       producers=achievement_producers(specs))
    missing = [c for c in check.contradicted if c.kind is ClaimKind.REQUIRES]
    assert [(c.key, c.spec_value, c.proposed) for c in missing] == [("achievement:place_table", 0, 1)]
    assert "Place_Table gains it" in missing[0].note
    fixed = parse_skill(check.corrected)
    assert fixed.requires == {"wood": 1, "achievement:place_table": 1}  # make_wood_pickaxe: nobody gains it
    # a pickaxe the step had to make itself: Collect_Stone without its requirement
    stone = SkillSpec("Collect_Stone", gains={"stone": 1})
    steps = [step(0, "Collect_Stone", start={"wood": 2}, pre={"wood_pickaxe": 1}, end={"wood_pickaxe": 1, "stone": 1})
             for _ in range(6)]
    check = check_spec(stone, steps)
    assert [(c.key, c.proposed) for c in check.contradicted] == [("wood_pickaxe", 1)]
    assert parse_skill(check.corrected).requires == {"wood_pickaxe": 1}


def test_a_gain_never_observed_is_contradicted():
    greedy = SkillSpec("Collect_Wood", gains={"wood": 2})
    steps = [step(0, "Collect_Wood", start={}, pre={"wood": 1}, end={"wood": 2}, count=1) for _ in range(5)]
    check = check_spec(greedy, steps)
    (claim,) = check.claims
    assert claim.verdict is Verdict.CONTRADICTED and claim.observed == 1 and claim.proposed == 1
    assert parse_skill(check.corrected).gains == {"wood": 1}


def _failing(e, reached, end=EndReason.BUDGET, actions=("left", "left", "do")):
    plan = [("Collect_Wood", 2), ("Place_Table", 1), ("Make_Wood_Pickaxe", 1)]
    st = tuple(step(j, plan[j][0], start={}, pre={}, end={}, completed=j < reached) for j in range(reached + 1))
    return EpisodeTrace(e, False, 30, end, False, reached, st, {}, (), actions)


def test_failure_analysis_names_the_stalling_step_in_a_sentence():
    plan = [("Collect_Wood", 2), ("Place_Table", 1), ("Make_Wood_Pickaxe", 1)]
    traces = [_failing(e, 1) for e in range(87)] + [_failing(100 + e, 0, EndReason.DEATH) for e in range(3)]
    wins = [EpisodeTrace(200 + e, True, 20, EndReason.SUCCESS, True, 3,
                         tuple(step(j, plan[j][0], start={}, pre={}, end={}) for j in range(3)), {}, (), ())
            for e in range(10)]
    fa = analyse_failures(traces + wins, plan, target=0.9)
    assert fa is not None and fa.success_rate == 0.1 and fa.stall_step == 1
    assert fa.summary.startswith("87 % of episodes never finish step 2 (Place_Table×1) within the budget")
    assert [s.reached for s in fa.steps] == [1.0, 0.97, 0.1]
    assert fa.end_reasons == {"budget": pytest.approx(87 / 90), "death": pytest.approx(3 / 90), "env_end": 0.0}
    assert fa.last_actions[0] == ("left", pytest.approx(2 / 3))
    assert analyse_failures(wins, plan, target=0.9) is None


def test_record_round_trip():
    traces = [table_episode(e) for e in range(10)]
    checks = (check_spec(TABLE_WRONG, completions_of(traces, "Place_Table")),)
    fa = analyse_failures([_failing(0, 1), table_episode(1)], [("Collect_Wood", 1), ("Place_Table", 1)], target=0.9)
    record = AnalysisRecord("Place_Table", "run-1", AnalysisStatus.ANALYSED, episodes=10, max_steps=20,
                            success_rate=0.5, random_success_rate=0.0, spec_checks=checks, failure=fa,
                            created_at="now")
    d = json.loads(json.dumps(record.to_dict()))
    assert d["schema"] == "flowrl.analysis/1"
    assert AnalysisRecord.from_dict(d) == record
    assert record.corrections() == {"Place_Table": TABLE_RIGHT.to_dict()}
    assert "2 contradicted claim(s)" in record.headline() and "correction proposed for Place_Table" in record.headline()
    with pytest.raises(ValueError, match="flowrl.analysis/1"):
        AnalysisRecord.from_dict({**d, "schema": "flowrl.eval/1"})


# --------------------------------------------------------------------------- feedback (pure)


def _wrong_record():
    traces = [table_episode(e) for e in range(10)]
    checks = tuple(check_spec(s, completions_of(traces, s.name)) for s in (WOOD, TABLE_WRONG))
    return AnalysisRecord("Place_Table", "run-1", AnalysisStatus.ANALYSED, episodes=10, max_steps=20,
                          success_rate=0.5, random_success_rate=0.0, spec_checks=checks)


def test_apply_corrections_diff_and_affected_skills():
    from flowrl_core.analysis.apply import apply_corrections, proposed_corrections
    from flowrl_core.skills.parsing import parse_skill_doc

    pickaxe = {"name": "Make_Wood_Pickaxe", "requires": {"wood": 1, "achievement:place_table": 1},
               "consumes": {"wood": 1}, "gains": {"wood_pickaxe": 1}, "train": {"total_timesteps": 5000}}
    doc = parse_skill_doc({"skills": [WOOD.to_dict(), TABLE_WRONG.to_dict() | {"description": "place a table"},
                                      pickaxe], "env": "gridworld"}, source="wrong.yaml")
    (corr,) = proposed_corrections(doc.specs, [_wrong_record()])
    assert corr.skill == "Place_Table" and corr.run_id == "run-1" and corr.completions == 10
    diff = corr.diff()
    assert '-    "wood": 1' in diff and '+    "wood": 2' in diff and diff.count("\n-") == 2
    applied = apply_corrections(doc, [corr])
    fixed = {s.name: s for s in applied.doc.specs}
    assert fixed["Place_Table"].consumes == {"wood": 2} and fixed["Place_Table"].description == "place a table"
    assert fixed["Make_Wood_Pickaxe"].train == {"total_timesteps": 5000} and applied.doc.env == "gridworld"
    # Place_Table's own spec changed; the pickaxe's plan runs through Place_Table (and collects
    # more wood now); Collect_Wood's plan is untouched
    assert applied.affected == ("Place_Table", "Make_Wood_Pickaxe")
    # applied again: nothing left to correct
    assert proposed_corrections(applied.doc.specs, [_wrong_record()]) == ()


def test_grow_proposers_revise_a_contradicted_learned_skill_once():
    from flowrl_core.grow.library import LibraryView, Revise, analysis_revision, invalid_revision

    view = LibraryView(learned={"Collect_Wood": WOOD, "Place_Table": TABLE_WRONG},
                       analyses={"Place_Table": _wrong_record()})
    revision = analysis_revision(view)
    assert isinstance(revision, Revise) and revision.spec == TABLE_RIGHT and "run-1" in revision.reason
    done = LibraryView(learned=view.learned, analyses=view.analyses, revised=("Place_Table",))
    assert analysis_revision(done) is None
    assert "already revised" in invalid_revision(TABLE_RIGHT, done)
    assert "only a learned skill" in invalid_revision(SkillSpec("Nope", gains={"wood": 1}), view)


def test_llm_proposer_sees_the_analysis_and_may_revise():
    from flowrl_core.grow.library import LibraryView, Revise
    from flowrl_core.grow.llm import _Rejected, library_message, parse_reply

    view = LibraryView(learned={"Collect_Wood": WOOD, "Place_Table": TABLE_WRONG},
                       analyses={"Place_Table": _wrong_record()})
    text = library_message(view, "Make_Wood_Pickaxe")
    line = next(json.loads(x) for x in text.splitlines() if x.startswith("{") and "Place_Table" in x)
    assert line["analysis"]["proposed_spec"] == TABLE_RIGHT.to_dict()
    assert any("consumes wood: spec 1, observed 2" in c for c in line["analysis"]["contradicted"])
    reply = parse_reply(json.dumps({"revise": TABLE_RIGHT.to_dict()}), view, None)
    assert isinstance(reply, Revise) and reply.spec == TABLE_RIGHT
    with pytest.raises(_Rejected, match="only a learned skill"):
        parse_reply(json.dumps({"revise": {"name": "Other", "gains": {"wood": 1}}}), view, None)


def iron_episode(e, *, furnace_near=True):
    nearby = ("crafting_table", "furnace", "grass") if furnace_near else ("crafting_table", "grass")
    craft = step(0, "Make_Iron_Pickaxe", start={"wood": 1, "stone": 1, "coal": 1, "iron": 1},
                 pre={"wood": 1, "stone": 1, "coal": 1, "iron": 1}, end={"iron_pickaxe": 1},
                 ach_end=("make_iron_pickaxe",), nearby=nearby)
    return EpisodeTrace(e, True, 5, EndReason.SUCCESS, True, 1, (craft,), {}, ("make_iron_pickaxe",), ("do",))


IRON = SkillSpec("Make_Iron_Pickaxe", requires={"wood": 1, "stone": 1, "coal": 1, "iron": 1,
                                                "near:crafting_table": 1, "near:furnace": 1},
                 consumes={"wood": 1, "stone": 1, "coal": 1, "iron": 1}, gains={"iron_pickaxe": 1})


def test_near_requirements_are_judged_on_the_blocks_in_range_at_completion():
    check = check_spec(IRON, completions_of([iron_episode(e) for e in range(10)], "Make_Iron_Pickaxe"))
    by = {(c.kind, c.key): c for c in check.claims}
    assert by[(ClaimKind.REQUIRES, "near:crafting_table")].verdict is Verdict.CONFIRMED
    assert by[(ClaimKind.REQUIRES, "near:furnace")].verdict is Verdict.CONFIRMED
    assert check.corrected is None
    # completions that never had a furnace in range contradict the claim and drop it
    check = check_spec(IRON, completions_of([iron_episode(e, furnace_near=False) for e in range(10)],
                                            "Make_Iron_Pickaxe"))
    furnace = {(c.kind, c.key): c for c in check.claims}[(ClaimKind.REQUIRES, "near:furnace")]
    assert furnace.verdict is Verdict.CONTRADICTED and furnace.proposed == 0
    assert "near:furnace" not in check.corrected["requires"] and "near:crafting_table" in check.corrected["requires"]


def find_episode(e, *, in_view: bool):
    """A Find_Diamond completion; ``nearby_end`` names crafting-range blocks plainly and view flags as ``view:<block>``."""
    nearby = ("stone", "view:stone") + (("view:diamond",) if in_view else ())
    find = step(0, "Find_Diamond", start={"iron_pickaxe": 1}, pre={"iron_pickaxe": 1}, end={"iron_pickaxe": 1},
                nearby=nearby)
    return EpisodeTrace(e, True, 5, EndReason.SUCCESS, True, 1, (find,), {}, (), ("right",))


def test_view_gains_are_judged_on_the_view_flags_not_on_the_blocks_in_range():
    spec = SkillSpec("Find_Diamond", requires={"iron_pickaxe": 1}, gains={"view:diamond": 1})
    check = check_spec(spec, completions_of([find_episode(e, in_view=True) for e in range(10)], "Find_Diamond"))
    claim = {(c.kind, c.key): c for c in check.claims}[(ClaimKind.GAINS, "view:diamond")]
    assert claim.verdict is Verdict.CONFIRMED and "in view" in claim.note
    check = check_spec(spec, completions_of([find_episode(e, in_view=False) for e in range(10)], "Find_Diamond"))
    claim = {(c.kind, c.key): c for c in check.claims}[(ClaimKind.GAINS, "view:diamond")]
    assert claim.verdict is Verdict.CONTRADICTED
