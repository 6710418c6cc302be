"""A racing stage trained by two ``peftspace worker`` processes on PostgreSQL decides as local workers on SQLite do."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from peftspace.discover import read_discovery

PLAN = {"max_blocks": 4, "first_look": 2, "look_every": 2}


def test_a_racing_stage_on_postgres_with_external_workers_matches_sqlite(postgres_url, data_dir, tiny, tmp_path):
    from peftspace.discover import run_discovery

    common = dict(stages=("allocation",), start="S1", name="pg-race", schedule=tiny, data_dir=data_dir, plan=PLAN,
                  threads=1)
    local = run_discovery("minilm", "rte", 2, storage=f"sqlite:///{tmp_path}/local.db", out_dir=tmp_path / "local",
                          workers=1, **common)
    assert local["status"] == "done"

    queued = run_discovery("minilm", "rte", 2, storage=postgres_url, out_dir=tmp_path / "pg", workers=0, **common)
    assert queued["status"] == "waiting"  # workers=0 without wait: queued, nothing trained
    result = {}
    driver = threading.Thread(target=lambda: result.update(run_discovery(  # makes the looks as the workers finish blocks
        "minilm", "rte", 2, storage=postgres_url, out_dir=tmp_path / "pg", workers=0, wait=True, **common)))
    driver.start()
    command = [sys.executable, "-m", "peftspace.cli", "worker", "--storage", postgres_url, "--study", "pg-race/S1",
               "--data-dir", str(data_dir), "--threads", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    try:
        outputs = [w.communicate(timeout=600)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    driver.join(timeout=120)
    assert [w.returncode for w in workers] == [0, 0], "\n".join(outputs)
    assert result.get("status") == "done"
    stored = read_discovery(postgres_url, "pg-race")
    [far], [near] = stored["stages"], local["stages"]
    assert far["race"] == near["race"] and far["winner"] == near["winner"] and far["verdict"] == near["verdict"]
    assert stored["final_design"] == local["final_design"]
