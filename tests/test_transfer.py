"""Transfer bar (slow): a dependent skill seeded with its dependencies' trained experts learns
at least twice as fast as from scratch.

Uses ``benchmarks/transfer.py``'s helpers, so the test measures exactly what the benchmark
prints: build the library (Collect_Wood, then Place_Table seeded with it, each through its own
plan), then Make_Wood_Pickaxe seeded vs from scratch with the same seed and config, frames to a
3-update moving average of >= 90 % success (>= 16 episodes per update).  ~2 minutes here.
"""

from __future__ import annotations

import pytest

from benchmarks.transfer import compare, frames_to_success, table


def _row(frames: int, rate: float | None, episodes: int = 20) -> dict:
    return {"frames": frames, "success_rate": rate, "episodes": episodes}


def test_frames_to_success_window_and_min_episodes():
    rows = [_row(1, 0.5), _row(2, 0.95), _row(3, 0.95), _row(4, 0.95), _row(5, 1.0)]
    assert frames_to_success(rows) == 4  # mean(0.5, .95, .95) < .9; first full window at frame 4
    rows[2] = _row(3, 1.0, episodes=5)  # too few episodes: windows containing it do not count
    assert frames_to_success(rows) is None
    assert frames_to_success(rows + [_row(6, 0.9)]) == 6  # window 4-6: mean(.95, 1, .9) >= .9
    assert frames_to_success([_row(1, None, 0), _row(2, 1.0), _row(3, 1.0)]) is None
    assert frames_to_success([]) is None


@pytest.mark.slow
def test_seeded_dependent_skill_learns_at_least_twice_as_fast():
    result = compare("Make_Wood_Pickaxe", seed=0, cap=400_000)
    print("\n" + table([result]))
    assert result.seeded.seeded == ["Collect_Wood", "Place_Table"] and result.scratch.seeded == []
    assert result.seeded.reached is not None, "the seeded run never reached 90 %"
    scratch = result.scratch.reached or result.cap  # not reached: the cap is a lower bound for scratch
    assert result.seeded.reached <= 0.5 * scratch, table([result])
