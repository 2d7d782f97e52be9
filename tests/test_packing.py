"""Packing several trainings per device: the memory estimate, the packer, the OOM fallback.

The estimate is checked against figures it does not compute itself: the concrete train state's
bytes (the update's argument, exactly), the trajectory the rollout must hold (a lower bound on
the temps), a size model (a factor), and — slow — the resident set the update really allocates
when it runs (tests/support/memory_probe.py).  The packer is checked with fake capacities: many
concurrent holders with random needs never exceed a device's budget, priority order holds, a
blocked big waiter is not overtaken forever, an oversized one runs alone.  The OOM drill runs
real JAX children that really run out of memory under their share (tests/support/oom_trainer.py).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import pytest

from flowrl_core.scheduling.devices import (
    DeviceConfigError,
    fit_count,
    gpu_capacities,
    parse_nvidia_smi_memory,
    parse_size,
    query_gpu_memory,
)
from flowrl_core.scheduling.process_memory import (
    ExitKind,
    TrainerExit,
    classify_exit,
    jax_memory_env,
    run_packed,
)
from flowrl_core.scheduling.slots import MemoryShare, PrioritySlots
from flowrl_core.skills.spec import PlanStep, SkillSpec
from flowrl_core.training.config import PPOConfig
from flowrl_core.training.memory import (
    EstimateMethod,
    MeasuredPeak,
    MemoryEstimate,
    RunMemory,
    analytic_step_bytes,
    clear_memory_cache,
    estimate_training,
    measure_peak,
    memory_key,
    tree_bytes,
)
from tests.support.corridor import Corridor

ROOT = Path(__file__).resolve().parents[1]
MiB = 1 << 20

SPECS = {
    "Collect_Wood": SkillSpec("Collect_Wood", gains={"wood": 1}),
    "Place_Table": SkillSpec("Place_Table", consumes={"wood": 2}, gains={"achievement:place_table": 1}),
}
PLAN = [PlanStep("Collect_Wood", 2), PlanStep("Place_Table", 1)]
K2 = {"Collect_Wood": 0, "Place_Table": 1}

# (env, experts, config): different envs, K, widths, env counts; each costs one compile (10-40 s
# on the shared 2-core CPU).  The gridworld one is also what the CLI test's setup produces.
WOOD_PLAN = [PlanStep("Collect_Wood", 1)]
CONFIGS = {
    "corridor-k2-w32-n16": ("corridor", PLAN, K2, PPOConfig.tiny_profile(width=32, num_envs=16)),
    "gridworld-k1-w64-n32": ("gridworld", WOOD_PLAN, {"Collect_Wood": 0},
                             PPOConfig.tiny_profile(width=64, num_envs=32, depth=3)),
}


@pytest.fixture(scope="module")
def corridor() -> Corridor:
    return Corridor(length=6)


def _env(name: str):
    from flowrl_core.envs import make_env_and_params

    if name == "corridor":
        env = Corridor(length=6)
        return env, env.default_params
    return make_env_and_params(name)


@pytest.fixture(scope="module")
def estimates(tmp_path_factory) -> dict[str, tuple[MemoryEstimate, Path]]:
    out = {}
    for name, (env_name, plan, experts, config) in CONFIGS.items():
        env, params = _env(env_name)
        cache = tmp_path_factory.mktemp(f"memcache-{name}")
        out[name] = (estimate_training(env, params, plan, SPECS, experts, config, cache_dir=cache), cache)
    return out


# --------------------------------------------------------------------------- the estimate


@pytest.mark.parametrize("name", list(CONFIGS))
def test_estimate_agrees_with_the_state_the_trainer_builds_and_the_rollout_it_holds(name, estimates):
    from flowrl_core.training.ppo import build_training, init_state

    estimate, _ = estimates[name]
    env_name, plan_steps, experts, config = CONFIGS[name]
    env, params = _env(env_name)
    p = estimate.parts
    assert estimate.method is EstimateMethod.XLA and estimate.platform == jax.devices()[0].platform
    assert estimate.num_experts == len(set(experts.values()))
    # The update's argument is the train state: XLA's figure equals the concrete pytree's bytes.
    k, plan, net, tx, _, _ = build_training(env, plan_steps, SPECS, experts, config)
    state = init_state(env, params, plan, net, tx, config, k)
    assert p.state == sum(x.nbytes for x in jax.tree.leaves(state)) == tree_bytes(state)
    assert p.params == tree_bytes(state.params)
    # The rollout buffer lives in the temps: they hold at least the trajectory (observations + scalars).
    observations = config.num_steps * config.num_envs * env.obs_shape[0] * 4
    assert observations < p.rollout < 1.2 * observations + config.num_steps * config.num_envs * 64
    assert p.step_temp >= p.rollout
    # No donation: the next state is a second copy of the state (plus the metrics).
    assert p.step_alias == 0 and p.state <= p.step_output < p.state + 64 * 1024
    # Stated factor: a size model written without XLA lands within 1.6x of XLA's peak either way.
    model = analytic_step_bytes(p.state, p.params, p.rollout, config)
    assert 1 / 1.6 <= model / p.step_peak <= 1.6, (model, p.step_peak)
    # The total is the larger of the update and the bank generation, plus code and process overhead.
    assert estimate.total_bytes == max(p.step_peak, p.init_peak) + p.code + p.process_overhead
    assert estimate.device_bytes == estimate.total_bytes - p.process_overhead
    assert estimate.compile_s > 0 and not estimate.cached


def test_estimate_grows_with_observations_width_and_envs(estimates):
    small, _ = estimates["corridor-k2-w32-n16"]
    big, _ = estimates["gridworld-k1-w64-n32"]
    assert big.parts.params > 2 * small.parts.params
    assert big.parts.step_temp > 1.5 * small.parts.step_temp
    assert big.device_bytes > small.device_bytes


def test_estimate_is_cached_in_process_and_on_disk(estimates):
    first, cache = estimates["gridworld-k1-w64-n32"]
    env_name, plan, experts, config = CONFIGS["gridworld-k1-w64-n32"]
    env, params = _env(env_name)
    # Settings that change no shape (learning rate, seed, budget) hit the same entry.
    same_shapes = PPOConfig(**{**config.__dict__, "lr": 0.123, "seed": 7, "total_timesteps": config.total_timesteps * 2})
    t0 = time.perf_counter()
    again = estimate_training(env, params, plan, SPECS, experts, same_shapes, cache_dir=cache)
    assert again.cached and time.perf_counter() - t0 < 2.0
    assert (again.total_bytes, again.parts, again.key) == (first.total_bytes, first.parts, first.key)
    clear_memory_cache()  # a new process: only the file is left
    assert (cache / f"{first.key}.json").exists()
    from_disk = estimate_training(env, params, plan, SPECS, experts, config, cache_dir=cache)
    assert from_disk.cached and from_disk.parts == first.parts
    assert MemoryEstimate.from_dict(json.loads(json.dumps(first.to_dict()))) == first


def test_measured_peak_is_recorded_beside_the_estimate(estimates):
    estimate, _ = estimates["corridor-k2-w32-n16"]
    measured = measure_peak()
    if jax.devices()[0].platform == "cpu":  # the CPU backend reports no allocator figures
        assert measured.peak_bytes is None and measured.bytes_limit is None
    assert measured.host_peak_rss_bytes > 50 * MiB  # this process, with JAX loaded
    record = RunMemory(estimate, measured)
    assert RunMemory.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    on_gpu = MeasuredPeak("gpu", "H200", estimate.device_bytes // 2, 10**11, 10**9)
    assert RunMemory(estimate, on_gpu).ratio == pytest.approx(0.5, abs=1e-6)
    assert record.ratio is None if measured.peak_bytes is None else record.ratio > 0


def test_estimate_child_process_stores_the_runs_memory_json(estimates, tmp_path):
    """``python -m flowrl_core.training.memory`` on a run prepared by setup: the record lands in
    ``runs/<id>/memory.json``; the key is the one the same shapes gave in this process, so the
    child answers from the shared disk cache without compiling."""
    from flowrl_core.lifecycle.messages import TrainerInput
    from flowrl_core.lifecycle.setup import setup
    from flowrl_core.skills.parsing import parse_skills
    from flowrl_core.store.objects import Store
    from flowrl_core.training.config import resolve_config

    first, cache = estimates["gridworld-k1-w64-n32"]
    specs = parse_skills({"skills": [{"name": "Collect_Wood", "gains": {"wood": 1}}]})
    url = str(tmp_path / "store")
    store = Store(url)
    for s in specs:
        store.assign_index(s.name)
    config = resolve_config("tiny", {"width": 64, "num_envs": 32, "depth": 3})
    job = setup(store, specs, "Collect_Wood", env="gridworld", config=config).job
    assert [(s.skill, s.count) for s in job.plan] == [(s.skill, s.count) for s in WOOD_PLAN]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "FLOWRL_MEMORY_CACHE": str(cache),
           "FLOWRL_JAX_CACHE": ""}

    def estimate_child(run_id: str, given: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flowrl_core.training.memory", "--run-id", run_id],
                              input=TrainerInput(store=url, run_id=given).to_json(), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600, check=False)

    done = estimate_child(job.run_id, job.run_id)
    assert done.returncode == 0, done.stderr[-2000:]
    record = RunMemory.from_dict(store.run(job.run_id).read_doc("memory.json"))
    assert record.estimate.cached and record.estimate.parts == first.parts and record.measured is None
    for run_id, given in (("nope", "nope"), (job.run_id, "other")):  # no such run; input and argument disagree
        bad = estimate_child(run_id, given)
        assert bad.returncode == 2 and bad.stderr.startswith("error: "), bad.stderr[-500:]


def test_memory_key_follows_shapes_not_hyperparameters(corridor):
    params = corridor.default_params
    base = PPOConfig.tiny_profile()
    key = memory_key(corridor, params, base, 2, 2)
    assert key == memory_key(corridor, params, PPOConfig.tiny_profile(lr=0.5, gamma=0.9, seed=3), 2, 2)
    assert key != memory_key(corridor, params, base, 3, 2)  # K
    assert key != memory_key(corridor, params, PPOConfig.tiny_profile(num_envs=32), 2, 2)
    assert key != memory_key(corridor, params, PPOConfig.tiny_profile(width=64), 2, 2)
    assert key != memory_key(Corridor(length=9), params, base, 2, 2)  # observation size


@pytest.mark.slow
@pytest.mark.parametrize("overrides,k", [({"num_envs": 512, "num_steps": 32, "width": 64}, 2),
                                         ({"num_envs": 256, "num_steps": 32, "width": 256}, 3)])
def test_estimate_matches_what_the_update_really_allocates(overrides, k, tmp_path):
    """Gridworld: the kernel's count of the first update's allocations vs XLA's output + temps.
    Measured 1.06x (512 envs, 3 x 64, K = 2).  Also: the trainer's compile after an estimate is a
    cache load."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "tests.support.memory_probe", json.dumps(overrides), str(k),
                           str(tmp_path / "jax-cache")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    estimate = MemoryEstimate.from_dict(result["estimate"])
    p = estimate.parts
    assert result["state_bytes"] == p.state
    ratio = result["rss_delta"] / (p.step_output + p.step_temp)
    assert 0.8 <= ratio <= 1.3, (ratio, result)
    assert result["second_compile_s"] < estimate.compile_s / 2


# --------------------------------------------------------------------------- packing


def test_unpacked_slots_ignore_memory_figures_and_keep_one_per_slot():
    slots = PrioritySlots.cpu(2)
    with slots.hold("a", 1, need_bytes=10**15) as grant:
        slot, device = grant
        assert grant.memory is None and (slot, device) == (grant.slot, grant.device)
        with slots.hold("b", 1, need_bytes=10**15) as other:
            assert other.slot != slot
    assert [e.need_bytes for e in slots.events] == [10**15, 10**15]
    assert slots.peak_concurrency() == 2


def test_packed_stress_never_exceeds_any_device_budget():
    caps = {"0": 1000, "1": 600}
    slots = PrioritySlots.packed(caps, margin=0.1)
    budget = {d: slots.budget(d) for d in caps}
    assert budget == {"0": 900, "1": 540}
    ledger = {d: [] for d in caps}  # what each device holds, as the holders themselves report it
    lock = threading.Lock()
    errors: list[str] = []
    rng = random.Random(0)
    jobs = [(f"j{i}", rng.choice([20, 50, 120, 300, 500, 700, 950]), rng.randint(0, 5)) for i in range(80)]

    def work(label, need, priority):
        time.sleep(rng.random() * 0.05)
        with slots.hold(label, priority, need_bytes=need) as grant:
            share = grant.memory
            with lock:
                mine = ledger[grant.device]
                mine.append((label, need, share.exclusive))
                alone = [x for x in mine if x[2]]
                if alone and len(mine) > 1:
                    errors.append(f"{label}: {mine} share a device with an exclusive holder")
                if sum(n for _, n, ex in mine if not ex) > budget[grant.device]:
                    errors.append(f"{grant.device} over budget: {mine}")
                if need > budget[grant.device] and not share.exclusive:
                    errors.append(f"{label} ({need}) is oversized for {grant.device} but not alone")
            time.sleep(0.002 + rng.random() * 0.02)
            with lock:
                mine.remove((label, need, share.exclusive))

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "deadlock: holders still waiting"
    assert errors == []
    assert len(slots.events) == 80
    assert slots.peak_concurrency() > 2  # it did pack
    # needs of 950 exceed every budget: they ran, alone, on the biggest device
    big = [e for e in slots.events if e.need_bytes == 950]
    assert big and all(e.exclusive and e.device == "0" for e in big)


def _hold_in_thread(slots, label, priority, need, order, *, hold_s=0.0, exclusive=False, started=None):
    def run():
        with slots.hold(label, priority, need_bytes=need, exclusive=exclusive) as grant:
            order.append((label, grant.device))
            if started is not None:
                started.set()
            time.sleep(hold_s)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_packed_single_device_is_strict_priority_order():
    slots = PrioritySlots.packed({"0": 100}, margin=0.0)
    order: list = []
    gate = threading.Event()

    def first():
        with slots.hold("first", 0, need_bytes=100):
            gate.wait(5)

    t0 = threading.Thread(target=first)
    t0.start()
    time.sleep(0.05)
    threads = [_hold_in_thread(slots, f"p{p}", p, need, order, hold_s=0.05)
               for p, need in ((1, 10), (5, 60), (3, 60), (2, 50))]
    time.sleep(0.1)
    gate.set()
    for t in [t0, *threads]:
        t.join(5)
    # p5 (60) starts first.  p3 (60) does not fit beside it and, being the best waiter, holds the
    # device: p2 (50) and p1 (10) would fit beside p5 but must wait.  Beside p3 only p1 would
    # fit, but p2 is now the best waiter: both wait for p3 to finish, then start together.
    at = {e.label: e for e in slots.events}
    assert order[0][0] == "p5"
    assert at["p3"].acquired_at >= at["p5"].released_at
    assert min(at["p2"].acquired_at, at["p1"].acquired_at) >= at["p3"].released_at


def test_blocked_head_claims_a_device_and_others_backfill_elsewhere():
    slots = PrioritySlots.packed({"0": 100, "1": 100}, margin=0.0)
    order: list = []
    release_h1, release_h2 = threading.Event(), threading.Event()
    running = threading.Barrier(3)

    def holder(label, need, release):
        with slots.hold(label, 9, need_bytes=need):
            running.wait(5)
            release.wait(10)

    h1 = threading.Thread(target=holder, args=("h1", 60, release_h1))
    h2 = threading.Thread(target=holder, args=("h2", 30, release_h2))
    h1.start()
    h2.start()
    running.wait(5)
    devices = {e.label: e.device for e in slots.events}
    assert devices["h1"] != devices["h2"]  # spread over devices
    free_most = devices["h2"]  # 70 free there, 40 on h1's
    big = _hold_in_thread(slots, "big", 5, 80, order, hold_s=0.05)
    time.sleep(0.1)
    # small (30) fits on h1's device: it backfills at once although big outranks it
    small = _hold_in_thread(slots, "small", 1, 30, order, hold_s=1.0)
    time.sleep(0.1)
    assert order == [("small", devices["h1"])]
    # small2 (30) would fit beside h2 (30 + 30), but big claimed that device: it must wait
    small2 = _hold_in_thread(slots, "small2", 1, 30, order, hold_s=0.01)
    time.sleep(0.2)
    assert [label for label, _ in order] == ["small"]
    release_h2.set()  # the claimed device drains: big starts there
    time.sleep(0.2)
    assert ("big", free_most) in order and order.index(("big", free_most)) == 1
    release_h1.set()
    for t in (h1, h2, big, small, small2):
        t.join(10)
    assert [label for label, _ in order] == ["small", "big", "small2"]


def test_big_waiter_is_not_starved_by_a_stream_of_small_ones():
    slots = PrioritySlots.packed({"0": 100}, margin=0.0)
    stop = threading.Event()
    started_after_big: list[str] = []
    big_waiting = threading.Event()
    big_started = threading.Event()

    def small_stream(i):
        n = 0
        while not stop.is_set():
            n += 1
            with slots.hold(f"s{i}-{n}", 1, need_bytes=30):
                if big_waiting.is_set() and not big_started.is_set():
                    started_after_big.append(f"s{i}-{n}")
                time.sleep(0.03)

    streams = [threading.Thread(target=small_stream, args=(i,)) for i in range(4)]
    for t in streams:
        t.start()
    time.sleep(0.2)

    waited: list[float] = []

    def big():
        big_waiting.set()
        t0 = time.monotonic()
        with slots.hold("big", 1, need_bytes=100):  # same priority, asks after the stream began
            big_started.set()
            waited.append(time.monotonic() - t0)

    tb = threading.Thread(target=big)
    tb.start()
    tb.join(5)
    stop.set()
    for t in streams:
        t.join(5)
    assert big_started.is_set(), "the big waiter starved"
    assert waited and waited[0] < 2.0
    # once it waited, at most the holders already queued before it could start (the stream's
    # next requests had lower sequence numbers only if they asked before it did)
    assert len(started_after_big) <= 4


def test_oversized_need_runs_alone_not_refused():
    slots = PrioritySlots.packed({"0": 100}, margin=0.1)
    order: list = []
    started = threading.Event()
    small = _hold_in_thread(slots, "small", 1, 40, order, hold_s=0.2, started=started)
    started.wait(5)
    huge = _hold_in_thread(slots, "huge", 5, 500, order, hold_s=0.2)
    time.sleep(0.05)
    late = _hold_in_thread(slots, "late", 0, 10, order, hold_s=0.0)
    for t in (small, huge, late):
        t.join(5)
    assert [label for label, _ in order] == ["small", "huge", "late"]
    huge_event = next(e for e in slots.events if e.label == "huge")
    others = [e for e in slots.events if e.label != "huge"]
    assert huge_event.exclusive
    assert all(e.released_at <= huge_event.acquired_at or e.acquired_at >= huge_event.released_at for e in others)


def test_shares_and_the_jax_settings_each_trainer_gets():
    slots = PrioritySlots.packed({"0": 80 * 2**30}, margin=0.1)
    with slots.hold("a", 1, need_bytes=8 * 2**30) as a, slots.hold("b", 1, exclusive=False, need_bytes=4 * 2**30) as b:
        assert a.memory.cap_bytes == int(8 * 2**30 * 1.1) and not a.memory.exclusive
        assert b.device == a.device == "0" and b.slot != a.slot
        env = jax_memory_env(a.memory).apply({"XLA_CLIENT_MEM_FRACTION": ".9", "PATH": "/bin"})
        assert env == {"PATH": "/bin", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                       "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.1100"}
    with slots.hold("c", 1, exclusive=True) as c:
        assert c.memory.exclusive and c.memory.cap_bytes == slots.budget("0")
        assert jax_memory_env(c.memory).set["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.9000"
    assert jax_memory_env(None).set == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # unpacked: as before


def test_jaxlib_reads_the_settings_we_give_a_trainer():
    """jaxlib's own GPU-option parser (a pure function of the environment) sees our share."""
    share = MemoryShare("0", 100 * MiB, 90 * MiB, 20 * MiB, 22 * MiB, False)
    env = jax_memory_env(share).apply({**os.environ, "XLA_CLIENT_MEM_FRACTION": "0.5"})  # a stale setting
    code = ("import json; from jaxlib import xla_client as x; o = x.generate_pjrt_gpu_plugin_options(); "
            "print(json.dumps({'f': o.get('memory_fraction'), 'p': o.get('preallocate')}))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and "generate_pjrt_gpu_plugin_options" in done.stderr:
        pytest.skip("this jaxlib has no generate_pjrt_gpu_plugin_options")
    assert done.returncode == 0, done.stderr[-1000:]
    assert json.loads(done.stdout) == {"f": 0.22, "p": False}


def test_packed_prime_and_handoff_keep_critical_path_order():
    slots = PrioritySlots.packed({"0": 100}, margin=0.0, handoff_grace_s=2.0)
    slots.prime({"low": 1, "high": 9})
    order: list = []
    t_low = _hold_in_thread(slots, "low", 1, 100, order, hold_s=0.05)
    time.sleep(0.1)  # low asks first, but high is expected: low waits for it
    t_high = _hold_in_thread(slots, "high", 9, 100, order, hold_s=0.05)
    for t in (t_low, t_high):
        t.join(5)
    assert [label for label, _ in order] == ["high", "low"]

    order.clear()
    running = threading.Event()

    def a():
        with slots.hold("A", 5, reserve_for=lambda: {"C": 9}, need_bytes=100):
            running.set()
            time.sleep(0.2)

    ta = threading.Thread(target=a)
    ta.start()
    running.wait(5)
    tb = _hold_in_thread(slots, "B", 1, 100, order)
    time.sleep(0.3)  # A released; C (unblocked by A) asks a moment later
    tc = _hold_in_thread(slots, "C", 9, 100, order)
    for t in (ta, tb, tc):
        t.join(10)
    assert [label for label, _ in order] == ["C", "B"]


def test_packed_expectation_expires_when_the_dependant_never_comes():
    slots = PrioritySlots.packed({"0": 100}, margin=0.0, handoff_grace_s=0.2)
    order: list = []
    running = threading.Event()

    def a():
        with slots.hold("A", 5, reserve_for=lambda: {"Ghost": 9}, need_bytes=100):
            running.set()
            time.sleep(0.05)

    ta = threading.Thread(target=a)
    ta.start()
    running.wait(5)
    t0 = time.monotonic()
    tb = _hold_in_thread(slots, "B", 1, 100, order)
    for t in (ta, tb):
        t.join(5)
    assert order == [("B", "0")] and time.monotonic() - t0 < 2.0


def test_exclusive_on_unpacked_slots_takes_the_whole_device():
    slots = PrioritySlots(["0", "0", "1"])
    order: list = []
    gate = threading.Event()

    def holder():
        with slots.hold("on0", 1) as (_, device):
            assert device == "0"
            gate.wait(5)

    t0 = threading.Thread(target=holder)
    t0.start()
    time.sleep(0.05)
    ex = _hold_in_thread(slots, "ex", 5, None, order, exclusive=True, hold_s=0.2)
    time.sleep(0.05)
    assert order == [("ex", "1")]  # GPU 0 is half taken: the exclusive holder gets GPU 1
    later = _hold_in_thread(slots, "later", 1, None, order)
    time.sleep(0.05)
    assert order[-1] == ("later", "0")  # the second slot of GPU 0 is free; GPU 1 is not
    gate.set()
    for t in (t0, ex, later):
        t.join(5)


# --------------------------------------------------------------------------- out of memory


@pytest.mark.parametrize("code,output,kind", [
    (0, "", ExitKind.OK),
    (1, "jax.errors.JaxRuntimeError: RESOURCE_EXHAUSTED: Out of memory allocating 524288000 bytes.",
     ExitKind.OUT_OF_MEMORY),
    (1, "XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 2.50GiB.", ExitKind.OUT_OF_MEMORY),
    (1, ("W external/xla/xla/tsl/framework/bfc_allocator.cc:501] Allocator (GPU_0_bfc) ran out of memory trying "
         "to allocate 1.2GiB (rounded to 1288490240)"), ExitKind.OUT_OF_MEMORY),
    (1, "jaxlib.xla_extension.XlaRuntimeError: INTERNAL: CUDA_ERROR_OUT_OF_MEMORY: out of memory", ExitKind.OUT_OF_MEMORY),
    (1, "error: skill 'X': unknown training setting 'lrr'", ExitKind.FAILED),
    (-9, "", ExitKind.FAILED),
])
def test_classify_trainer_exit(code, output, kind):
    assert classify_exit(code, output) is kind
    assert TrainerExit(code, output).kind is kind


def test_injected_oom_falls_back_to_one_training_per_device(tmp_path):
    """Two trainings declare 300 MiB but really need 500: packed together on a 1000 MiB device
    each gets a 330 MiB cap and runs out of memory for real; each is retried alone (900 MiB cap)
    and succeeds, and the retries never share the device."""
    capacity = 1000 * MiB
    slots = PrioritySlots.packed({"0": capacity}, margin=0.1)
    base = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "FLOWRL_TEST_DEVICE_BYTES": str(capacity)}

    def train(grant):
        env = jax_memory_env(grant.memory).apply(base)
        done = subprocess.run([sys.executable, "-m", "tests.support.oom_trainer", "500"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        return TrainerExit(done.returncode, (done.stdout + done.stderr)[-4000:])

    results = {}
    barrier = threading.Barrier(2)

    def skill(label):
        barrier.wait(5)
        results[label] = run_packed(slots, label, 1.0, train, need_bytes=300 * MiB)

    threads = [threading.Thread(target=skill, args=(f"s{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    for label, run in results.items():
        kinds = [a.exit.kind for a in run.attempts]
        assert kinds == [ExitKind.OUT_OF_MEMORY, ExitKind.OK], (label, [a.exit.output[-300:] for a in run.attempts])
        assert run.ok and run.retried_alone
        assert not run.attempts[0].share.exclusive and run.attempts[1].share.exclusive
    first = [e for e in slots.events if not e.exclusive]
    assert len(first) == 2 and first[0].acquired_at < first[1].released_at and first[1].acquired_at < first[0].released_at
    alone = sorted((e for e in slots.events if e.exclusive), key=lambda e: e.acquired_at)
    assert len(alone) == 2 and alone[0].released_at <= alone[1].acquired_at


def test_run_packed_does_not_retry_a_training_that_was_already_alone():
    slots = PrioritySlots.packed({"0": 1000}, margin=0.1)
    calls = []

    def train(grant):
        calls.append(grant.memory.exclusive)
        return TrainerExit(1, "RESOURCE_EXHAUSTED: Out of memory")

    run = run_packed(slots, "x", 1.0, train, need_bytes=5000)  # oversized: alone from the start
    assert calls == [True] and not run.ok and run.exit.kind is ExitKind.OUT_OF_MEMORY
    unpacked = PrioritySlots(["0"])
    run = run_packed(unpacked, "y", 1.0, lambda g: TrainerExit(1, "Out of memory"))
    assert len(run.attempts) == 1  # its slot was the device's only one


# --------------------------------------------------------------------------- capacities


def test_nvidia_smi_output_and_manual_sizes():
    h100 = "0, 81559\n1, 81559\n"
    assert parse_nvidia_smi_memory(h100) == {"0": 81559 * MiB, "1": 81559 * MiB}
    assert parse_nvidia_smi_memory("0, 143771\n\n") == {"0": 143771 * MiB}
    with pytest.raises(DeviceConfigError, match="--gpu-memory"):
        parse_nvidia_smi_memory("No devices were found")
    assert parse_size("80GiB") == 80 * 2**30 and parse_size("80GB") == 80 * 10**9
    assert parse_size("81920MiB") == 80 * 2**30 and parse_size("1.5TiB") == int(1.5 * 2**40)
    assert parse_size("1024") == 1024
    for bad in ("eighty", "80XB", "0GiB", ""):
        with pytest.raises(DeviceConfigError):
            parse_size(bad)
    assert gpu_capacities(["0", "1"], "80GiB") == {"0": 80 * 2**30, "1": 80 * 2**30}
    assert gpu_capacities(["0", "1"], "0=80GiB,1=40GiB") == {"0": 80 * 2**30, "1": 40 * 2**30}
    with pytest.raises(DeviceConfigError, match="no size for GPU 1"):
        gpu_capacities(["0", "1"], "0=80GiB")
    assert gpu_capacities(["1"], query=lambda: parse_nvidia_smi_memory(h100)) == {"1": 81559 * MiB}
    with pytest.raises(DeviceConfigError, match="no GPU 3"):
        gpu_capacities(["3"], query=lambda: parse_nvidia_smi_memory(h100))


def test_query_gpu_memory_runs_nvidia_smi_and_tolerates_its_absence():
    seen = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="0, 143771\n", stderr="")

    assert query_gpu_memory(fake_run) == {"0": 143771 * MiB}
    assert seen == [["nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"]]
    assert query_gpu_memory(lambda cmd, **kw: subprocess.CompletedProcess(cmd, 9, "", "NVIDIA-SMI has failed")) == {}


def test_pool_workers_give_each_run_an_even_share():
    from deployments.pools import worker_env

    env = worker_env("0", {"PATH": "/bin", "XLA_CLIENT_MEM_FRACTION": "0.5"}, limit=4)
    assert env == {"PATH": "/bin", "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "CUDA_VISIBLE_DEVICES": "0",
                   "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.2250"}
    # one run per GPU, or a CPU worker: as before (no fraction)
    assert worker_env("0", {}, limit=1) == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "CUDA_VISIBLE_DEVICES": "0"}
    assert worker_env(None, {}, limit=4) == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def test_fit_count_is_the_pool_workers_limit():
    assert fit_count(80 * 2**30, 2 * 2**30, margin=0.1) == 36
    assert fit_count(80 * 2**30, 100 * 2**30) == 1  # oversized: alone
    with pytest.raises(ValueError):
        fit_count(80 * 2**30, 0)
