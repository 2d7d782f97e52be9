"""Proposers: file order and skips, the curriculum's path to a target, library validation, the
frontier (count-aware), and the LLM proposer against a real local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
import yaml

from flowrl_core.errors import SkillFileError
from flowrl_core.grow.curriculum import CurriculumProposer, load_knowledge_base
from flowrl_core.grow.file_proposer import FileProposer
from flowrl_core.grow.library import (
    Done,
    LibraryView,
    NothingNow,
    Propose,
    Proposer,
    ProposerError,
    frontier,
    validate_against_library,
)
from flowrl_core.grow.llm import LLMProposer
from flowrl_core.grow.registry import load_proposer
from flowrl_core.skills.graph import build_graph, needs, providers
from flowrl_core.skills.parsing import load_skill_file, parse_skills
from flowrl_core.skills.spec import SkillSpec
from tests.support.llm_stub_server import Raw, Slow, Status, StubLLMServer

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"

WOOD = SkillSpec("Collect_Wood", gains={"wood": 1})
TABLE = SkillSpec("Place_Table", requires={"wood": 2}, consumes={"wood": 2},
                  gains={"achievement:place_table": 1})


def spec(name, **kw):
    """A factory returning a SkillSpec, not a proposer: load_proposer must refuse it."""
    return parse_skills({"skills": [{"name": "Collect_Wood", "gains": {"wood": 1}},
                                    {"name": name, **kw}]})[1]


class Loop:
    """The generation flow, reduced to its bookkeeping: propose → in flight → learned/failed."""

    def __init__(self, proposer: Proposer, fail: dict[str, str] | None = None):
        self.proposer = proposer
        self.fail = fail or {}
        self.learned: dict[str, SkillSpec] = {}
        self.in_flight: dict[str, SkillSpec] = {}
        self.failed: dict[str, str] = {}
        self.proposed: list[str] = []

    def view(self) -> LibraryView:
        return LibraryView(dict(self.learned), dict(self.in_flight), dict(self.failed), {})

    def finish(self, name: str) -> None:
        spec = self.in_flight.pop(name)
        if name in self.fail:
            self.failed[name] = self.fail[name]
        else:
            self.learned[name] = spec

    def step(self, *, finish_at_once: bool):
        view = self.view()
        answer = self.proposer.propose(view)
        if isinstance(answer, Propose):
            validate_against_library(answer.spec, view)
            for provider in frontier(answer.spec, view):  # the flow waits for these
                assert provider in self.in_flight
            self.proposed.append(answer.spec.name)
            self.in_flight[answer.spec.name] = answer.spec
            if finish_at_once:
                self.finish(answer.spec.name)
        elif isinstance(answer, NothingNow):
            assert self.in_flight, f"NothingNow with nothing in flight would deadlock: {answer}"
            self.finish(next(iter(self.in_flight)))  # the oldest submission finishes
        return answer

    def run(self, *, finish_at_once: bool = False, limit: int = 100):
        for _ in range(limit):
            answer = self.step(finish_at_once=finish_at_once)
            if isinstance(answer, Done):
                return answer
        raise AssertionError("the proposer never said Done")


def assert_valid_order(proposed: list[str], specs: dict[str, SkillSpec]) -> None:
    """Each proposal's needs are gained by a skill proposed before it."""
    for i, name in enumerate(proposed):
        earlier = providers(specs[p] for p in proposed[:i])
        for key in needs(specs[name]):
            assert key in earlier, f"{name} proposed before any provider of {key}"


# ---------------------------------------------------------------------------------------------
# FileProposer
# ---------------------------------------------------------------------------------------------


def test_file_proposer_proposes_in_training_order_then_done():
    path = EXAMPLES / "craftax_classic.yaml"
    specs = {s.name: s for s in load_skill_file(path)}
    loop = Loop(FileProposer(path))
    done = loop.run()
    assert sorted(loop.proposed) == sorted(specs)
    assert_valid_order(loop.proposed, specs)
    assert loop.proposed[:2] == ["Collect_Wood", "Place_Table"]
    assert "all 13 skills" in done.reason and not loop.failed
    assert isinstance(loop.proposer.propose(loop.view()), Done)  # stays done


def test_file_proposer_does_not_wait_for_providers_in_flight():
    proposer = FileProposer(EXAMPLES / "gridworld_basic.yaml")
    view = LibraryView()
    first = proposer.propose(view)
    assert first.spec.name == "Collect_Wood"
    second = proposer.propose(LibraryView(in_flight={"Collect_Wood": first.spec}))
    assert isinstance(second, Propose) and second.spec.name == "Place_Table"


def test_file_proposer_skips_descendants_of_a_failed_provider_and_goes_on():
    path = EXAMPLES / "craftax_classic.yaml"
    loop = Loop(FileProposer(path), fail={"Collect_Stone": "success rate 0.00 < 0.5"})
    done = loop.run(finish_at_once=True)
    skipped = loop.proposer.skipped
    downstream = {"Make_Stone_Pickaxe", "Make_Stone_Sword", "Place_Furnace", "Collect_Iron",
                  "Make_Iron_Pickaxe", "Make_Iron_Sword", "Collect_Diamond"}
    assert set(skipped) == downstream
    assert "Collect_Stone" in skipped["Make_Stone_Pickaxe"] and "0.00" in skipped["Make_Stone_Pickaxe"]
    assert "skipped" in skipped["Collect_Diamond"]  # via Make_Iron_Pickaxe, itself skipped
    assert set(loop.proposed) == {"Collect_Wood", "Place_Table", "Make_Wood_Pickaxe", "Make_Wood_Sword",
                                  "Collect_Stone", "Collect_Coal"}
    assert "7 skipped" in done.reason


def test_file_proposer_skips_what_the_library_already_has():
    proposer = FileProposer(EXAMPLES / "gridworld_basic.yaml")
    answer = proposer.propose(LibraryView(learned={"collect_wood": WOOD}))  # case-insensitive
    assert answer.spec.name == "Place_Table"


def test_file_proposer_treats_a_proposal_that_never_arrived_as_rejected():
    proposer = FileProposer(EXAMPLES / "gridworld_basic.yaml")
    assert proposer.propose(LibraryView()).spec.name == "Collect_Wood"
    answer = proposer.propose(LibraryView())  # the flow dropped Collect_Wood without a word
    assert isinstance(answer, Done)
    assert "never entered the library" in proposer.skipped["Collect_Wood"]
    assert set(proposer.skipped) == {s.name for s in load_skill_file(EXAMPLES / "gridworld_basic.yaml")}


# ---------------------------------------------------------------------------------------------
# Knowledge bases and the curriculum
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kb", ["gridworld", "craftax_classic"])
def test_knowledge_bases_load_with_parse_skills(kb):
    path = HERE.parent / "flowrl_core" / "grow" / "knowledge" / f"{kb}.yaml"
    specs = parse_skills(yaml.safe_load(path.read_text()))
    assert [s.name for s in specs] == [s.name for s in load_knowledge_base(kb)]
    names = {s.name for s in specs}
    assert {"Collect_Wood", "Place_Table", "Make_Iron_Pickaxe", "Collect_Diamond", "Place_Plant",
            "Collect_Drink", "Collect_Sapling"} <= names
    by = {s.name: s for s in specs}
    assert dict(by["Place_Table"].consumes) == {"wood": 2}
    assert dict(by["Place_Furnace"].requires) == {"stone": 1}  # no table needed
    iron = by["Make_Iron_Pickaxe"]
    assert dict(iron.consumes) == {"wood": 1, "stone": 1, "coal": 1, "iron": 1}
    assert {"achievement:place_table", "achievement:place_furnace"} <= set(iron.requires)
    if kb == "gridworld":
        assert not names & {"Eat_Cow", "Defeat_Zombie"}  # no mobs in the gridworld
    else:
        assert {"Eat_Cow", "Defeat_Zombie"} <= names


def test_gridworld_kb_matches_the_env_recipes():
    from flowrl_core.envs.gridworld import RECIPES

    by = {s.name: s for s in load_knowledge_base("gridworld")}
    for achievement, cost in RECIPES.items():
        skill = by["_".join(w.capitalize() for w in achievement.split("_"))]
        assert dict(skill.consumes) == cost, skill.name
        assert f"achievement:{achievement}" in skill.gains


@pytest.mark.parametrize("finish_at_once", [True, False])
@pytest.mark.parametrize("kb,target", [("gridworld", "Collect_Diamond"),
                                        ("craftax_classic", "achievement:make_stone_pickaxe"),
                                        ("gridworld", "iron_sword"), ("craftax_classic", "collect_coal")])
def test_curriculum_walks_to_the_target_and_stops(kb, target, finish_at_once):
    proposer = CurriculumProposer(kb, target)
    kb_specs = {s.name: s for s in load_knowledge_base(kb)}
    path = nx.ancestors(build_graph(list(kb_specs.values())), proposer.target) | {proposer.target}
    loop = Loop(proposer)
    done = loop.run(finish_at_once=finish_at_once)
    assert "learned" in done.reason and proposer.target in loop.learned
    assert loop.proposed[-1] == proposer.target
    assert set(loop.proposed) == path  # every prerequisite, nothing off the path, each once
    assert len(loop.proposed) == len(set(loop.proposed))
    assert_valid_order(loop.proposed, kb_specs)


def test_curriculum_never_proposes_off_the_path():
    loop = Loop(CurriculumProposer("craftax_classic", "Make_Wood_Sword"))
    loop.run()
    assert loop.proposed == ["Collect_Wood", "Place_Table", "Make_Wood_Sword"]


def test_curriculum_target_training_is_nothing_now_not_done():
    proposer = CurriculumProposer("gridworld", "Place_Table")
    table = load_knowledge_base("gridworld")[1]
    answer = proposer.propose(LibraryView(learned={"Collect_Wood": WOOD}, in_flight={"Place_Table": table}))
    assert isinstance(answer, NothingNow) and "training" in answer.reason
    answer = proposer.propose(LibraryView(learned={"Collect_Wood": WOOD, "Place_Table": table}))
    assert isinstance(answer, Done)


def test_curriculum_prefers_skills_whose_providers_are_learned():
    by = {s.name: s for s in load_knowledge_base("gridworld")}
    pick = by["Make_Wood_Pickaxe"]
    view = LibraryView(learned={n: by[n] for n in ("Collect_Wood", "Place_Table")},
                       in_flight={"Make_Wood_Pickaxe": pick})
    # Collect_Coal and Collect_Stone both wait on the pickaxe (allowed: the flow blocks on the
    # frontier); same depth, so the name decides.
    answer = CurriculumProposer("gridworld", "Make_Iron_Sword").propose(view)
    assert answer.spec.name == "Collect_Coal"
    assert frontier(answer.spec, view) == {"Make_Wood_Pickaxe"}


def test_curriculum_prefers_an_empty_frontier_over_depth_and_name(tmp_path):
    kb = tmp_path / "kb.yaml"
    kb.write_text(yaml.safe_dump({"skills": [
        {"name": "Wood", "gains": {"wood": 1}},
        {"name": "Stone", "gains": {"stone": 1}},
        {"name": "Coal", "requires": {"wood": 1}, "gains": {"coal": 1}},
        {"name": "Iron", "requires": {"coal": 1}, "gains": {"iron": 1}},
        {"name": "A_Shallow", "requires": {"stone": 1}, "gains": {"sapling": 1}},
        {"name": "Target", "requires": {"iron": 1, "sapling": 1}, "gains": {"diamond": 1}},
    ]}))
    proposer = CurriculumProposer(kb, "Target")
    by = proposer.specs
    view = LibraryView(learned={n: by[n] for n in ("Wood", "Coal")}, in_flight={"Stone": by["Stone"]})
    assert proposer.propose(view).spec.name == "Iron"  # deeper, but A_Shallow waits on Stone
    view = LibraryView(learned={n: by[n] for n in ("Wood", "Coal", "Stone")})
    assert CurriculumProposer(kb, "Target").propose(view).spec.name == "A_Shallow"


def test_curriculum_uses_library_keys_under_other_names():
    chop = SkillSpec("Chop", gains={"wood": 3})
    answer = CurriculumProposer("gridworld", "Place_Table").propose(LibraryView(learned={"Chop": chop}))
    assert answer.spec.name == "Place_Table"  # wood is already provided: no Collect_Wood


def test_curriculum_count_aware_needs(tmp_path):
    kb = tmp_path / "kb.yaml"
    kb.write_text(yaml.safe_dump({"skills": [
        {"name": "Collect_Wood", "gains": {"wood": 1}},
        {"name": "Bundle", "requires": {"wood": 4}, "consumes": {"wood": 4}, "gains": {"sapling": 1}},
    ]}))
    proposer = CurriculumProposer(kb, "Bundle")
    bundle = proposer.specs["Bundle"]
    assert proposer.propose(LibraryView()).spec.name == "Collect_Wood"
    assert proposer.propose(LibraryView(learned={"Collect_Wood": WOOD})).spec.name == "Bundle"
    assert frontier(bundle, LibraryView(in_flight={"Collect_Wood": WOOD})) == {"Collect_Wood"}
    assert frontier(bundle, LibraryView(learned={"Collect_Wood": WOOD})) == set()


def test_curriculum_failed_prerequisite_makes_the_target_unreachable():
    proposer = CurriculumProposer("gridworld", "Collect_Stone")
    by = {s.name: s for s in load_knowledge_base("gridworld")}
    view = LibraryView(learned={"Collect_Wood": by["Collect_Wood"], "Place_Table": by["Place_Table"]},
                       failed={"Make_Wood_Pickaxe": "success rate 0.1 < 0.5"})
    answer = proposer.propose(view)
    assert isinstance(answer, Done) and "unreachable" in answer.reason and "0.1" in answer.reason


def test_curriculum_target_resolution_and_errors():
    assert CurriculumProposer("gridworld", "stone_pickaxe").target == "Make_Stone_Pickaxe"
    assert CurriculumProposer("gridworld", "achievement:collect_stone").target == "Collect_Stone"
    assert CurriculumProposer("gridworld", "collect_drink").target == "Collect_Drink"
    assert CurriculumProposer("gridworld", "place_table").target == "Place_Table"  # case-insensitive name
    with pytest.raises(ProposerError, match="Collect_Stone"):
        CurriculumProposer("gridworld", "Colect_Stone")
    with pytest.raises(ProposerError, match="unknown target"):
        CurriculumProposer("gridworld", "achievement:eat_cow")  # no cows in the gridworld
    with pytest.raises(ProposerError, match="knowledge base 'minecraft'"):
        CurriculumProposer("minecraft", "Collect_Wood")
    with pytest.raises(ProposerError, match="did you mean 'gridworld'"):
        CurriculumProposer("gridwold", "Collect_Wood")
    with pytest.raises(ProposerError, match="needs a target"):
        CurriculumProposer("gridworld", "")


# ---------------------------------------------------------------------------------------------
# validate_against_library and frontier
# ---------------------------------------------------------------------------------------------


def test_validate_accepts_a_fitting_skill():
    validate_against_library(TABLE, LibraryView(in_flight={"Collect_Wood": WOOD}))


@pytest.mark.parametrize("view,new,match", [
    (LibraryView(learned={"Collect_Wood": WOOD}), SkillSpec("collect_wood", gains={"wood": 1}), "learned"),
    (LibraryView(in_flight={"Collect_Wood": WOOD}), SkillSpec("COLLECT_WOOD", gains={"wood": 1}), "in flight"),
    (LibraryView(failed={"Place_Table": "diverged"}), SkillSpec("place_table", gains={"wood": 1}), "diverged"),
    (LibraryView(), TABLE, "no skill gains it"),
    (LibraryView(learned={"Collect_Wood": WOOD}),
     SkillSpec("X", requires={"stone": 1}, gains={"coal": 1}), "'stone'"),
    (LibraryView(learned={"Collect_Wood": WOOD}, failed={"Old": "crashed"}),
     SkillSpec("X", gains={"coal": 1}, depends_on=("Old",)), "failed skill 'Old'"),
])
def test_validate_rejects(view, new, match):
    with pytest.raises(SkillFileError, match=match):
        validate_against_library(new, view)


def test_validate_rejects_a_cycle():
    # A library whose only sapling provider failed still holds C (needs sapling); a new skill
    # that gains sapling but runs after C closes a loop C -> F -> C.
    view = LibraryView(learned={"C": SkillSpec("C", requires={"sapling": 1}, gains={"iron": 1})})
    cyclic = SkillSpec("F", requires={"iron": 1}, gains={"sapling": 1})
    with pytest.raises(SkillFileError, match="cycle"):
        validate_against_library(cyclic, view)


def test_frontier_is_count_aware_and_transitive():
    big = SkillSpec("Big", requires={"wood": 4}, consumes={"wood": 4}, gains={"sapling": 1})
    assert frontier(big, LibraryView(in_flight={"Collect_Wood": WOOD})) == {"Collect_Wood"}
    assert frontier(big, LibraryView(learned={"Collect_Wood": WOOD})) == set()
    pick = SkillSpec("Pick", requires={"achievement:place_table": 1}, gains={"wood_pickaxe": 1})
    view = LibraryView(learned={"Collect_Wood": WOOD}, in_flight={"Place_Table": TABLE})
    assert frontier(pick, view) == {"Place_Table"}
    view = LibraryView(in_flight={"Collect_Wood": WOOD, "Place_Table": TABLE})
    assert frontier(pick, view) == {"Collect_Wood", "Place_Table"}  # the whole chain trains


def test_frontier_prefers_a_learned_provider():
    fast = SkillSpec("Chop_Fast", gains={"wood": 2})
    big = SkillSpec("Big", requires={"wood": 4}, gains={"sapling": 1})
    assert frontier(big, LibraryView(learned={"Collect_Wood": WOOD}, in_flight={"Chop_Fast": fast})) == set()


# ---------------------------------------------------------------------------------------------
# LLMProposer against a real local HTTP server
# ---------------------------------------------------------------------------------------------

STONE = json.dumps({"name": "Get_Stone", "requires": {"wood_pickaxe": 1}, "gains": {"stone": 1}})
PICK = SkillSpec("Make_Wood_Pickaxe", requires={"wood": 1, "achievement:place_table": 1},
                 consumes={"wood": 1}, gains={"wood_pickaxe": 1})
VIEW = LibraryView(learned={"Collect_Wood": WOOD, "Place_Table": TABLE}, in_flight={"Make_Wood_Pickaxe": PICK},
                   failed={"Dig": "never succeeded"},
                   results={"Collect_Wood": {"success_rate": 0.97, "frames": 100_000}})


def llm(server, target="achievement:collect_diamond", **kw):
    kw.setdefault("max_retries", 3)
    return LLMProposer(server.base_url, "stub-model", "sk-test", target, timeout_s=5, retry_wait_s=0, **kw)


def last_user(request) -> str:
    return request["json"]["messages"][-1]["content"]


def test_llm_accepts_a_valid_reply_and_sends_the_library():
    with StubLLMServer([STONE]) as server:
        answer = llm(server).propose(VIEW)
    assert isinstance(answer, Propose) and answer.spec.name == "Get_Stone"
    assert dict(answer.spec.gains) == {"stone": 1}
    (request,) = server.requests
    body = request["json"]
    assert body["model"] == "stub-model"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    system, user = body["messages"]
    assert system["role"] == "system" and "achievement:" in system["content"] and "gains" in system["content"]
    assert "achievement:collect_diamond" in user["content"]
    assert '"success_rate": 0.97' in user["content"] and '"status": "training"' in user["content"]
    assert "Dig" in user["content"] and "never succeeded" in user["content"]


@pytest.mark.parametrize("bad,reason", [
    ("Let's collect some stone next!", "not a JSON object"),
    ("```json\n" + json.dumps({"name": "Get_Gold", "requires": {"wood_pickaxe": 1}, "gains": {"gold": 1}})
     + "\n```", "unknown item 'gold'"),
    (json.dumps({"name": "collect_wood", "gains": {"wood": 1}}), "clashes with learned skill 'Collect_Wood'"),
    (json.dumps({"name": "Get_Iron", "requires": {"stone_pickaxe": 1}, "gains": {"iron": 1}}), "no skill gains it"),
    (json.dumps({"name": "Sneaky", "gains": {"stone": 1}, "predicate": "os:system"}), "'predicate' is not allowed"),
    (json.dumps({"name": "Big", "gains": {"stone": 1}, "train": {"total_timesteps": 10**12}}),
     "'train' overrides are not allowed"),
    ("DONE", "DONE is wrong"),
])
def test_llm_rejects_bad_output_feeds_the_reason_back_and_retries(bad, reason):
    fenced_ok = "Here you go:\n```json\n" + STONE + "\n```"
    with StubLLMServer([bad, fenced_ok]) as server:
        proposer = llm(server)
        answer = proposer.propose(VIEW)
    assert isinstance(answer, Propose) and answer.spec.name == "Get_Stone"
    first, second = server.requests
    assert len(second["json"]["messages"]) == len(first["json"]["messages"]) + 2
    assert second["json"]["messages"][-2] == {"role": "assistant", "content": bad}
    assert reason in last_user(second) and last_user(second).startswith("Rejected:")
    assert reason in proposer.rejections[0]


@pytest.mark.parametrize("failure,reason", [
    (Status(500, "upstream exploded"), "HTTP 500"),
    (Raw("<html>bad gateway</html>"), "not a chat completion"),
    (Raw(json.dumps({"choices": []})), "not a chat completion"),
    (Slow(1.0, STONE), "ReadTimeout"),
])
def test_llm_retries_transport_failures_unchanged(failure, reason):
    with StubLLMServer([failure, STONE]) as server:
        proposer = llm(server)
        proposer.timeout_s = 0.3
        answer = proposer.propose(VIEW)
    assert isinstance(answer, Propose)
    assert reason in proposer.rejections[0]
    first, second = server.requests[:2]
    assert first["json"]["messages"] == second["json"]["messages"]  # the model did nothing wrong


def test_llm_gives_nothing_now_after_max_retries():
    replies = ["nope", Status(500, "boom"), "```json\n{\"name\": \"X\"}\n```", Raw("{not json")]
    with StubLLMServer(replies) as server:
        answer = llm(server, max_retries=3).propose(VIEW)
    assert isinstance(answer, NothingNow)
    assert "4 attempts" in answer.reason and "not a chat completion" in answer.reason
    assert len(server.requests) == 4
    assert "'gains' is empty" in last_user(server.requests[3])  # fed back after the fenced reply


def test_llm_unreachable_server_is_nothing_now():
    with StubLLMServer() as server:
        url = server.base_url
    proposer = LLMProposer(url, "m", "", "stone", max_retries=1, timeout_s=1, retry_wait_s=0)
    answer = proposer.propose(LibraryView())
    assert isinstance(answer, NothingNow) and "ConnectError" in answer.reason


def test_llm_done_and_target_checks():
    with StubLLMServer(["DONE"]) as server:
        answer = llm(server, target="get as far as you can").propose(VIEW)
    assert isinstance(answer, Done)  # free-text target: the model's word
    diamond = SkillSpec("Mine_Diamond", requires={"wood": 1}, gains={"diamond": 1})
    with StubLLMServer() as server:
        proposer = llm(server, target="diamond")
        assert isinstance(proposer.propose(LibraryView(learned={"Collect_Wood": WOOD, "D": diamond})), Done)
        training = proposer.propose(LibraryView(learned={"Collect_Wood": WOOD}, in_flight={"D": diamond}))
        assert isinstance(training, NothingNow) and "training" in training.reason
    assert server.requests == []  # decided without asking the model


def test_llm_from_env(monkeypatch):
    monkeypatch.setenv("FLOWRL_LLM_MODEL", "m1")
    monkeypatch.setenv("FLOWRL_LLM_API_KEY", "k1")
    monkeypatch.delenv("FLOWRL_LLM_BASE_URL", raising=False)
    proposer = LLMProposer.from_env("diamond")
    assert proposer.url == "https://api.openai.com/v1/chat/completions"
    assert (proposer.model, proposer.api_key, proposer.target_key) == ("m1", "k1", "diamond")
    monkeypatch.setenv("FLOWRL_LLM_BASE_URL", "http://127.0.0.1:9/v1/")
    assert LLMProposer.from_env("diamond").url == "http://127.0.0.1:9/v1/chat/completions"
    monkeypatch.delenv("FLOWRL_LLM_MODEL")
    with pytest.raises(ProposerError, match="FLOWRL_LLM_MODEL"):
        LLMProposer.from_env("diamond")


# ---------------------------------------------------------------------------------------------
# load_proposer
# ---------------------------------------------------------------------------------------------


def make_fixed(name: str = "Collect_Wood"):
    """A factory for the import-path test."""
    return FileProposer(EXAMPLES / "gridworld_basic.yaml")


def test_load_proposer_builtins_and_import_paths(monkeypatch):
    assert isinstance(load_proposer("file", path=EXAMPLES / "gridworld_basic.yaml"), FileProposer)
    assert isinstance(load_proposer("curriculum", kb="gridworld", target="wood"), CurriculumProposer)
    monkeypatch.setenv("FLOWRL_LLM_MODEL", "m")
    assert isinstance(load_proposer("llm", target="wood"), LLMProposer)
    assert isinstance(load_proposer("tests.test_proposers:make_fixed", name="x"), FileProposer)


@pytest.mark.parametrize("spec,match", [
    ("genetic", "unknown proposer 'genetic'"),
    ("no_such_module_xyz:make", "cannot be imported"),
    ("tests.test_proposers:missing", "has no 'missing'"),
    ("tests.test_proposers:EXAMPLES", "not a factory"),
    ("tests.test_proposers:spec", "without a propose"),
])
def test_load_proposer_errors(spec, match):
    kwargs = {"name": "S", "gains": {"wood": 1}} if spec.endswith(":spec") else {}
    with pytest.raises(ProposerError, match=match):
        load_proposer(spec, **kwargs)
