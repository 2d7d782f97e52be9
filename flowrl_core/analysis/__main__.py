"""``python -m flowrl_core.analysis --run-id ID``: the analyse step's child process (see ``main``)."""

from __future__ import annotations

from flowrl_core.analysis.run import analyse_run
from flowrl_core.errors import FlowRLError
from flowrl_core.store.objects import Store


def main(argv: list[str] | None = None) -> int:
    """``python -m flowrl_core.analysis --run-id ID`` with a TrainerInput JSON document on stdin:
    analyse the trained run and store its ``analysis.json``.  Run where and as the trainer runs
    (pinned GPU, no preallocation), never inside the orchestrator, whose JAX would grab the GPU."""
    import argparse
    import sys

    from flowrl_core.lifecycle.messages import TrainerInput
    from flowrl_core.lifecycle.train import configure_jax  # the trainer's compilation cache
    from flowrl_core.plugins import load_plugins

    parser = argparse.ArgumentParser(prog="python -m flowrl_core.analysis",
                                     description="Analyse one trained run; reads a TrainerInput on stdin.")
    parser.add_argument("--run-id", required=True, help="the run to analyse (also in the input; shown in ps)")
    args = parser.parse_args(argv)
    try:
        given = TrainerInput.from_json(sys.stdin.read())
        if given.run_id != args.run_id:
            raise FlowRLError(f"--run-id {args.run_id} differs from the input's run id {given.run_id}")
        load_plugins()
        configure_jax()
        store = Store(given.store, storage_options=given.storage_options, create=False)
        record = analyse_run(store, given.run_id)
    except FlowRLError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(record.headline(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
