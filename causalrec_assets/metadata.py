"""Materialization metadata: row counts, previews, and pictures a person would rather see."""

from __future__ import annotations

import base64
import io
from typing import Any

import dagster as dg
import polars as pl

OWNERS = ["team:causalrec"]


def markdown(frame: pl.DataFrame, rows: int = 20) -> dg.MetadataValue:
    head = frame.head(rows)
    cells = [[("" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))) for v in r] for r in head.rows()]
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return dg.MetadataValue.md("\n".join(lines))


def markdown_dict(values: dict[str, Any]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- **{k}**: {v}" for k, v in values.items()))


def table_metadata(frame: pl.DataFrame, preview: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"dagster/row_count": frame.height, "columns": ", ".join(frame.columns)}
    if preview:
        meta["preview"] = markdown(frame.head(5))
    return meta


def interaction_metadata(interactions: pl.DataFrame) -> dict[str, Any]:
    meta = table_metadata(interactions)
    if "split" in interactions.columns:
        for split, n in interactions.group_by("split").len().iter_rows():
            meta[f"rows_{split}"] = n
    if "exposure" in interactions.columns and interactions.schema["exposure"].is_numeric():
        meta["exposure_rate"] = float(interactions["exposure"].mean() or 0.0)
    return meta


def graph_picture(graph: dict) -> dg.MetadataValue:
    """The causal graph as a PNG (exposure → outcome in red, the adjustment set in orange)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(graph["nodes"])
    g.add_edges_from(tuple(e) for e in graph["edges"])
    adjust = set(graph.get("adjustment_set", []))
    layers = {n: (2 if n == "outcome" else 1 if n == "exposure" else 0) for n in g.nodes}
    nx.set_node_attributes(g, layers, "layer")
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical")
    colors = ["#d62728" if n in ("exposure", "outcome") else "#ff7f0e" if n in adjust else "#9ecae1" for n in g.nodes]
    edge_colors = ["#d62728" if e == ("exposure", "outcome") else "#555555" for e in g.edges]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=90)
    nx.draw_networkx(
        g, pos, ax=ax, node_color=colors, edge_color=edge_colors, node_size=1600, font_size=8, arrowsize=14, width=1.4
    )
    ax.set_title("causal graph (red: exposure → outcome, orange: adjustment set)")
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return dg.MetadataValue.md(f"![causal graph](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")
