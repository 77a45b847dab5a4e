"""The Dagster UI in a real browser: ``dagster dev`` on loopback serving the ``examples/two_pipelines``
project (two ``CausalRecPipeline`` components), Playwright driving Debian's Chromium, "Materialize
all" clicked on the ``simulated`` pipeline's job, every stage asset of that instance materialized,
screenshots kept under test-output/: the asset graph, and the pages of ``causal_graph``,
``treatment_effects``, ``evaluation``, ``policy_value`` and ``explanations``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dagster_server import REPO, DagsterDev, dagster_dev, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT_DIR = REPO / "test-output"
EXAMPLE = REPO / "examples" / "two_pipelines"
PREFIX = "simulated"  # the Component instance this test drives
STAGE_ASSETS = {
    "users", "items", "interactions", "validation_report", "item_embeddings", "user_embeddings",
    "causal_graph", "bayesian_network", "treatment_effects", "recommendations", "test_scores", "evaluation",
    "policy_value", "explanations",
}  # fmt: skip
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DagsterDev]:
    """``dagster dev`` on the two-pipeline example project."""
    with dagster_dev(tmp_path, target=("-m", "two_pipelines.definitions"), cwd=EXAMPLE) as running:
        yield running


def location_name(server: DagsterDev) -> str:
    entries = server.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name } } } }")
    return entries["workspaceOrError"]["locationEntries"][0]["name"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")
def test_materialize_all_from_the_ui(server: DagsterDev) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        job = f"{server.url}/locations/{location_name(server)}/jobs/{PREFIX}_causalrec"
        page.goto(job, wait_until="networkidle", timeout=120_000)
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
            runs = server.graphql("{ runsOrError { ... on Runs { results { runId status pipelineName } } } }")
            results = runs["runsOrError"]["results"]
            return results and results[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED") and results[0]

        run = wait_for(finished_run, 600, step=3, what="the run launched from the UI")
        assert run["status"] == "SUCCESS", server.log.read_text()[-4000:]
        assert run["pipelineName"] == f"{PREFIX}_causalrec"

        nodes = server.graphql("{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }")
        materialized = {"/".join(n["assetKey"]["path"]) for n in nodes["assetNodes"] if n["assetMaterializations"]}
        expected = {f"{PREFIX}/{name}" for name in STAGE_ASSETS}
        assert expected <= materialized, expected - materialized
        assert not any(key.startswith("shop/") for key in materialized)  # the other instance stayed as it was
        page.goto(f"{server.url}/asset-groups", wait_until="networkidle", timeout=120_000)

        page.reload(wait_until="networkidle")
        page.wait_for_timeout(3000)
        SCREENSHOT_DIR.mkdir(exist_ok=True)
        for target in (server.root / "ui-materialize-all.png", SCREENSHOT_DIR / "ui-materialize-all.png"):
            page.screenshot(path=str(target), full_page=True)
        page.set_viewport_size({"width": 2600, "height": 2000})  # the graph has a minimum zoom: room to fit it
        page.goto(job, wait_until="networkidle", timeout=120_000)  # the instance's job: its asset graph alone
        page.wait_for_timeout(2000)
        page.keyboard.press("Alt+KeyE")  # the graph's "Expand all groups" shortcut (⌥E): every asset shown
        page.wait_for_timeout(1500)
        page.reload(wait_until="networkidle")  # kept in the URL; a fresh load centres the expanded graph
        page.wait_for_timeout(3000)
        skip_newsletter(page)
        shots = [SCREENSHOT_DIR / "ui-asset-graph.png"]
        page.screenshot(path=str(shots[0]))
        shots += asset_page_screenshots(page, server.url)
        browser.close()
    assert (SCREENSHOT_DIR / "ui-materialize-all.png").stat().st_size > 10_000
    assert all(shot.stat().st_size > 10_000 for shot in shots), shots


def skip_newsletter(page) -> None:
    """Close the newsletter dialog, which may come back on any page load."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()
        page.wait_for_timeout(500)


PICTURES = {"causal_graph": "graph", "evaluation": "plot", "policy_value": "plot", "explanations": "plot"}
FIRST_KEY = {
    "causal_graph": "adjustment_set", "treatment_effects": "ate", "evaluation": "ranking_target",
    "policy_value": "summary", "explanations": "explained",
}  # fmt: skip


def asset_page_screenshots(page, url: str) -> list[Path]:
    """The overview pages of ``causal_graph``, ``treatment_effects``, ``evaluation``, ``policy_value`` and
    ``explanations`` (and the picture opened from a metadata row), saved under ``SCREENSHOT_DIR``
    for a person to look at."""
    shots = []
    page.set_viewport_size({"width": 1600, "height": 2400})  # the UI scrolls inside its own pane
    for asset in ("causal_graph", "treatment_effects", "evaluation", "policy_value", "explanations"):
        page.goto(f"{url}/assets/{PREFIX}/{asset}", wait_until="networkidle", timeout=120_000)
        page.get_by_text(FIRST_KEY[asset], exact=True).first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        skip_newsletter(page)
        shots.append(SCREENSHOT_DIR / f"ui-{asset}.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
        if asset in PICTURES:
            row = page.locator("tr", has=page.get_by_text(PICTURES[asset], exact=True))
            row.get_by_text("[Show Markdown]").first.click()
            dialog = page.get_by_role("dialog")
            dialog.locator("img").first.wait_for(timeout=30_000)
            page.wait_for_timeout(1000)
            shots.append(SCREENSHOT_DIR / f"ui-{asset}-picture.png")
            dialog.first.screenshot(path=str(shots[-1]))
            page.keyboard.press("Escape")
    return shots
