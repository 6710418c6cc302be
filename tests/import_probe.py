"""A fresh interpreter that records every attempt to import torch or transformers, even a guarded one.

Shared by the tests proving that the torch-free layers (design, tasks, analysis) stay torch-free.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers")

PROBE = r"""
import importlib.abc, json, sys

HEAVY = ("torch", "transformers")
attempts = []

class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            attempts.append(name)
        return None  # let the normal finders do the real work

sys.meta_path.insert(0, Recorder())
for statement in json.loads(sys.argv[1]):
    exec(statement)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"attempts": attempts, "loaded": loaded}))
"""


def run_probe(*statements: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(statements))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
