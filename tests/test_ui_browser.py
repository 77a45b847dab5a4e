"""The Dagster UI in a real browser: ``dagster dev`` on loopback, Playwright driving Debian's
Chromium, "Materialize all" clicked, every stage asset materialized, a screenshot kept."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import write_canonical

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT_DIR = REPO / "test-output"
STAGE_ASSETS = {
    "users", "items", "interactions", "validation_report", "item_embeddings", "user_embeddings",
    "causal_graph", "bayesian_network", "treatment_effects", "recommendations", "test_scores", "evaluation",
}  # fmt: skip
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


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
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())["data"]


def _wait(predicate, timeout: float, step: float = 2.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # the server is still starting or loading the code location
            pass
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def dagster_dev(tmp_path: Path, small_world):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    data = write_canonical(tmp_path / "data", small_world)
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CAUSALREC_STORAGE": str(tmp_path / "storage"),
        "CAUSALREC_DATA": str(data),
        "CAUSALREC_EXECUTOR": "in_process",
    }
    log = open(tmp_path / "dagster-dev.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [DAGSTER, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait(lambda: _graphql(port, "{ assetNodes { id } }")["assetNodes"], 240, what="dagster dev")
        yield port, tmp_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")
def test_materialize_all_from_the_ui(dagster_dev):
    from playwright.sync_api import sync_playwright

    port, tmp_path = dagster_dev
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/asset-groups", wait_until="networkidle", timeout=120_000)
        skip = page.get_by_role("button", name="Skip")  # the first-visit newsletter dialog
        if skip.count():
            skip.first.click()
        button = page.get_by_role("button", name="Materialize all").first
        for _ in range(5):  # first-visit dialogs and toasts may overlay the button for a moment
            try:
                button.click(timeout=15_000)
                break
            except Exception:
                page.keyboard.press("Escape")
                if page.get_by_role("button", name="Skip").count():
                    page.get_by_role("button", name="Skip").first.click()
        else:
            button.click(force=True)

        def finished_run():
            runs = _graphql(port, "{ runsOrError { ... on Runs { results { runId status } } } }")
            results = runs["runsOrError"]["results"]
            return results and results[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED") and results[0]

        run = _wait(finished_run, 600, step=3, what="the run launched from the UI")
        assert run["status"] == "SUCCESS", (tmp_path / "dagster-dev.log").read_text()[-4000:]

        nodes = _graphql(port, "{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }")
        materialized = {"/".join(n["assetKey"]["path"]) for n in nodes["assetNodes"] if n["assetMaterializations"]}
        assert STAGE_ASSETS <= materialized, STAGE_ASSETS - materialized

        page.reload(wait_until="networkidle")
        page.wait_for_timeout(3000)
        SCREENSHOT_DIR.mkdir(exist_ok=True)
        for target in (tmp_path / "ui-materialize-all.png", SCREENSHOT_DIR / "ui-materialize-all.png"):
            page.screenshot(path=str(target), full_page=True)
        browser.close()
    assert (SCREENSHOT_DIR / "ui-materialize-all.png").stat().st_size > 10_000
