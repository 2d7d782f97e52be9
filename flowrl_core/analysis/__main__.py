"""``python -m flowrl_core.analysis --run-id ID``: the analyse step's child process (see ``main``)."""

from __future__ import annotations

from flowrl_core.analysis.run import analyse_run
from flowrl_core.errors import FlowRLError


def main(argv: list[str] | None = None) -> int:
    """``python -m flowrl_core.analysis --run-id ID`` with a TrainerInput JSON document on stdin:
    analyse the trained run and store its ``analysis.json``.  Run where and as the trainer runs
    (pinned GPU, no preallocation), never inside the orchestrator, whose JAX would grab the GPU."""
    import argparse
    import sys

    from flowrl_core.lifecycle.train import open_given_run

    parser = argparse.ArgumentParser(prog="python -m flowrl_core.analysis",
                                     description="Analyse one trained run; reads a TrainerInput on stdin.")
    parser.add_argument("--run-id", required=True, help="the run to analyse (also in the input; shown in ps)")
    args = parser.parse_args(argv)
    try:
        record = analyse_run(open_given_run(args.run_id), args.run_id)
    except FlowRLError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(record.headline(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
