"""Run as a separate process by test_merge.py: merge a deterministic batch of proposals.

Usage: python merge_worker.py STORE_URL OPTIONS_JSON WORKER_ID N_MERGES [--index]
Each proposal's params are derived from (worker, merge) so the test can replay them.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from flowrl_core.store.experts import Proposal, merge_proposals
from flowrl_core.store.objects import Store


def proposals(worker: int, n: int, experts: int = 3):
    rng = np.random.default_rng(1000 + worker)
    for m in range(n):
        run_id = f"w{worker}-m{m}"
        batch = []
        for index in range(experts):
            frames = int(rng.integers(0, 40)) * 1000  # small range: many ties
            params = {"w": np.full((3,), worker * 1000 + m, np.float32), "b": np.array([index], np.int32)}
            batch.append(Proposal(index, f"S{index}", frames, params))
        yield run_id, batch


def main() -> None:
    url, options, worker, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = Store(url, storage_options=options)
    if "--index" in sys.argv:
        got = {f"K{k}": store.assign_index(f"K{k}") for k in range(5)}
        print(json.dumps(got))
        return
    for run_id, batch in proposals(worker, n):
        merge_proposals(store, run_id, batch)


if __name__ == "__main__":
    main()
