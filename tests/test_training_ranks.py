"""training.ranks: ranks settle on the largest or smallest value; one process keeps its own."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from training.ranks import max_across_ranks, min_across_ranks

ROOT = Path(__file__).resolve().parents[1]
# one rank: join a gloo group of 3 on localhost, print [min, max] of the ranks' values
RANK = """
import json, sys, types
import torch.distributed as dist
from training.ranks import max_across_ranks, min_across_ranks
rank, port, value = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=3)
args = types.SimpleNamespace(device="cpu")
print(json.dumps([min_across_ranks(value, args), max_across_ranks(value, args)]))
dist.destroy_process_group()
"""


def test_one_process_keeps_its_value() -> None:
    assert min_across_ranks(5, None) == 5 and max_across_ranks(5, None) == 5


@pytest.mark.slow
def test_three_ranks_agree_on_min_and_max() -> None:
    # separate interpreters, not multiprocessing: a spawned child would re-run whatever script
    # an earlier test left as __main__ (AppTest leaves ui/app.py)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", RANK, str(rank), str(port), str(value)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for rank, value in enumerate([7, 3, 11])
    ]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in ranks]
    assert outputs == [[3, 11]] * 3
