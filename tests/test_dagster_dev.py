"""``dagster dev`` really serves the assets: the webserver answers GraphQL with every stage."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
QUERY = "{ assetNodes { assetKey { path } groupName repository { location { name } } } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_dagster_dev_serves_every_stage(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "CAUSALREC_STORAGE": str(tmp_path / "storage")}
    proc = subprocess.Popen(
        [DAGSTER, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline, nodes = time.monotonic() + 180, []
        while time.monotonic() < deadline and not nodes:
            time.sleep(2)
            try:
                nodes = _graphql(port, QUERY)["data"]["assetNodes"]
            except Exception:  # not up yet, or the code location is still loading
                nodes = []
        assert nodes, "dagster dev did not serve the asset graph within 180 s"
        groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
        expected = {
            "users": "ingest", "interactions": "ingest", "validation_report": "validate",
            "item_embeddings": "embed", "causal_graph": "structure", "bayesian_network": "structure",
            "treatment_effects": "effects", "recommendations": "ranking", "test_scores": "ranking",
        }  # fmt: skip
        for asset, group in expected.items():
            assert groups.get(asset) == group, (asset, groups.get(asset))
        assert {n["repository"]["location"]["name"] for n in nodes} == {"causalrec"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
