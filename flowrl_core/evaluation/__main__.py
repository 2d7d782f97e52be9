"""``python -m flowrl_core.evaluation --skill NAME``: evaluate a skill's current experts in a child process.

The flows that re-evaluate a skill (the nightly continuation, before it ranks) run this instead
of evaluating in their own process, whose JAX would grab the GPU. The input comes on stdin
(an :class:`~flowrl_core.lifecycle.messages.EvaluationInput`), so the store's credentials stay
off the command line. The evaluation is recorded as the skill's latest, as ``flowrl eval --record``
records it; stdout gets one line that says what it found.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from flowrl_core.errors import FlowRLError
    from flowrl_core.evaluation.store import evaluate_skill, record_evaluation
    from flowrl_core.lifecycle.messages import EvaluationInput, ProtocolError
    from flowrl_core.lifecycle.train import open_child_store

    parser = argparse.ArgumentParser(prog="python -m flowrl_core.evaluation",
                                     description="Evaluate one skill and record it; reads an EvaluationInput on stdin.")
    parser.add_argument("--skill", required=True, help="the skill to evaluate (also in the input; shown in ps)")
    args = parser.parse_args(argv)
    try:
        given = EvaluationInput.from_json(sys.stdin.read())
        if given.skill != args.skill:
            raise ProtocolError(f"--skill {args.skill} differs from the input's skill {given.skill}")
        store = open_child_store(given.store, given.storage_options)
        report = evaluate_skill(store, given.skill, episodes=given.episodes, seed=given.seed)
        record_evaluation(store, report)
    except FlowRLError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"{given.skill}: success {report.success_rate:.3f} vs random {report.baseline.success_rate:.3f} "
          f"on {report.episodes} fresh episodes", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
