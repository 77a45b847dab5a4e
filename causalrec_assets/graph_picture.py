"""The causal graph as a picture for the Dagster UI (a PNG inside Markdown metadata).

Nodes sit in layers (longest path from a root, so causes stand left of effects), edges are
coloured by bootstrap stability (red: rarely found again, orange: half the time, green:
always) and dashed when
flagged unstable; the directed paths from exposure to outcome are drawn thick, exposure and
outcome in red, the adjustment set in orange.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import dagster as dg
import networkx as nx

TREATMENT_COLOUR = "#d62728"
ADJUST_COLOUR = "#ff7f0e"
OTHER_COLOUR = "#9ecae1"


def causal_paths(edges: Sequence[Sequence[str]], treatment: str, outcome: str) -> set[tuple[str, str]]:
    """Edges that lie on a directed path from ``treatment`` to ``outcome``."""
    graph = nx.DiGraph([tuple(e) for e in edges])
    if treatment not in graph or outcome not in graph:
        return set()
    on_path = (nx.descendants(graph, treatment) | {treatment}) & (nx.ancestors(graph, outcome) | {outcome})
    return {(a, b) for a, b in graph.edges() if a in on_path and b in on_path}


def layers(nodes: Sequence[str], edges: Sequence[Sequence[str]]) -> dict[str, int]:
    """Longest-path depth of each node (roots at 0)."""
    graph = nx.DiGraph([tuple(e) for e in edges])
    graph.add_nodes_from(nodes)
    depth: dict[str, int] = {}
    for node in nx.topological_sort(graph):
        depth[node] = max((depth[p] + 1 for p in graph.predecessors(node)), default=0)
    return depth


def render_png(graph: dict, treatment: str = "exposure", outcome: str = "outcome") -> bytes:
    """PNG bytes of ``graph`` (``nodes``, ``edges``, optional ``stability`` aligned with the
    edges, ``unstable_edges`` and ``adjustment_set``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    nodes = list(graph["nodes"])
    edges = [tuple(e) for e in graph["edges"]]
    stability = list(graph.get("stability") or [])
    unstable = {tuple(e) for e in graph.get("unstable_edges", [])}
    adjust = set(graph.get("adjustment_set", []))
    path = causal_paths(edges, treatment, outcome)
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    depth = layers(nodes, edges)
    nx.set_node_attributes(g, depth, "layer")
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical")
    crowd = max((list(depth.values()).count(k) for k in set(depth.values())), default=1)
    size = 2000 if crowd <= 8 else 1100
    fig, ax = plt.subplots(
        figsize=(min(3 + 2.2 * (max(depth.values(), default=0) + 1), 24), min(max(2 + 0.75 * crowd, 4), 18)), dpi=90
    )
    node_colours = [
        TREATMENT_COLOUR if n in (treatment, outcome) else ADJUST_COLOUR if n in adjust else OTHER_COLOUR
        for n in g.nodes
    ]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=node_colours, node_size=size, alpha=0.95)
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=6)
    cmap = colors.LinearSegmentedColormap.from_list("stability", ["#c0392b", "#f39c12", "#1e8449"])
    norm = colors.Normalize(vmin=0.0, vmax=1.0)
    share = dict(zip(edges, stability, strict=False)) if len(stability) == len(edges) else {}
    for edge in edges:
        colour = cmap(norm(share[edge])) if edge in share else (0.33, 0.33, 0.33, 1.0)
        nx.draw_networkx_edges(
            g,
            pos,
            edgelist=[edge],
            ax=ax,
            edge_color=[colour],
            width=4.0 if edge in path else 1.6,
            style="dashed" if edge in unstable else "solid",
            arrowsize=16 if edge in path else 12,
            node_size=size,
        )
    if share:
        bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.03, pad=0.01)
        bar.set_label("edge stability (share of bootstrap resamples)")
    ax.set_title(
        f"causal graph: {len(edges)} edges; thick: {treatment} → {outcome} paths; red nodes: {treatment}, {outcome}; "
        "orange: adjustment set; dashed: unstable",
        fontsize=9,
    )
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def graph_picture(graph: dict, treatment: str = "exposure", outcome: str = "outcome") -> dg.MetadataValue:
    """The picture as Markdown metadata (the Dagster UI renders the embedded PNG)."""
    data = base64.b64encode(render_png(graph, treatment, outcome)).decode()
    return dg.MetadataValue.md(f"![causal graph](data:image/png;base64,{data})")
