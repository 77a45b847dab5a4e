"""``causalrec plugins`` imports every plugin module to read its API version, so the heavy
libraries a plugin needs only to do its work must be imported where that work is done."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("great_expectations", "pgmpy", "torch")

DISCOVER = f"""
import json, sys
import causalrec_assets.cli
from causalrec_assets.registry import get_registry
get_registry()
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))))
"""


def test_plugin_discovery_imports_no_heavy_library() -> None:
    done = subprocess.run([sys.executable, "-c", DISCOVER], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
