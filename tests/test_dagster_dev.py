"""``dagster dev`` really serves the assets: the webserver answers GraphQL with every stage."""

from __future__ import annotations

from pathlib import Path

from tests.dagster_server import dagster_dev

QUERY = "{ assetNodes { assetKey { path } groupName repository { location { name } } } }"


def test_dagster_dev_serves_every_stage(tmp_path: Path):
    with dagster_dev(tmp_path, timeout=180) as server:
        nodes = server.graphql(QUERY)["assetNodes"]
    groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
    expected = {
        "users": "ingest", "interactions": "ingest", "validation_report": "validate",
        "item_embeddings": "embed", "causal_graph": "structure", "bayesian_network": "structure",
        "treatment_effects": "effects", "recommendations": "ranking", "test_scores": "ranking",
    }  # fmt: skip
    for asset, group in expected.items():
        assert groups.get(asset) == group, (asset, groups.get(asset))
    assert {n["repository"]["location"]["name"] for n in nodes} == {"causalrec"}
