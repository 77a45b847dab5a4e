"""The causal graph as a picture (PNG bytes; the framework shows it in the Dagster UI).

Nodes sit in layers (longest path from a root, so causes stand left of effects). Each colour
means one thing: node fills say what a variable is (exposure and outcome purple, the
adjustment set orange, others grey); edges go from pale to dark blue with their bootstrap
stability, dashed when flagged unstable, thick on the directed exposure → outcome paths.
Text is 11 pt at 100 dpi (15 px) on a picture at most 12 inches wide, so it stays at least 12 px
where the UI shows the picture at its own size.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import networkx as nx

__all__ = [
    "ADJUST_COLOUR",
    "OTHER_COLOUR",
    "STABILITY_COLOURS",
    "TREATMENT_COLOUR",
    "causal_paths",
    "layers",
    "render_png",
]

TREATMENT_COLOUR = "#cab2d6"  # exposure, outcome
ADJUST_COLOUR = "#fdbf6f"  # the adjustment set
OTHER_COLOUR = "#e8e8e8"
STABILITY_COLOURS = ("#c6dbef", "#08306b")  # rarely found again → always
FONT_PT, DPI, MAX_WIDTH_IN = 11, 100, 12.0


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


def _label(name: str) -> str:
    return name.replace("_", "_\n", 1) if len(name) > 12 and "_" in name else name


def render_png(graph: dict, treatment: str = "exposure", outcome: str = "outcome") -> bytes:
    """PNG bytes of ``graph`` (``nodes``, ``edges``, optional ``stability`` aligned with the
    edges, ``unstable_edges`` and ``adjustment_set``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

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
    width = min(2.0 + 2.4 * (max(depth.values(), default=0) + 1), MAX_WIDTH_IN)
    fig, ax = plt.subplots(figsize=(width, min(max(1.5 + 0.85 * crowd, 4.0), 11.0)), dpi=DPI)
    labels = {n: _label(n) for n in g.nodes}
    # the edges stop at a circle as wide as the label's box (node_size is that diameter squared, pt²)
    box = {n: (0.62 * FONT_PT * max(len(x) for x in labels[n].split("\n")) + 10) ** 2 for n in g.nodes}
    sizes = [box[n] for n in g.nodes]
    fill = {
        n: TREATMENT_COLOUR if n in (treatment, outcome) else ADJUST_COLOUR if n in adjust else OTHER_COLOUR for n in g
    }
    cmap = colors.LinearSegmentedColormap.from_list("stability", list(STABILITY_COLOURS))
    norm = colors.Normalize(vmin=0.0, vmax=1.0)
    share = dict(zip(edges, stability, strict=False)) if len(stability) == len(edges) else {}
    for edge in edges:
        colour = cmap(norm(share[edge])) if edge in share else (0.3, 0.3, 0.3, 1.0)
        nx.draw_networkx_edges(
            g,
            pos,
            edgelist=[edge],
            ax=ax,
            edge_color=[colour],
            width=4.0 if edge in path else 1.8,
            style="dashed" if edge in unstable else "solid",
            arrowsize=20 if edge in path else 14,
            nodelist=list(g.nodes),
            node_size=sizes,
        )
    for n in g.nodes:
        x, y = pos[n]
        ax.text(x, y, labels[n], ha="center", va="center", fontsize=FONT_PT, zorder=3,
                bbox={"boxstyle": "round,pad=0.35", "fc": fill[n], "ec": "#555555", "lw": 1.0})  # fmt: skip
    if share:
        bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.03, pad=0.01)
        bar.set_label("edge stability (share of bootstrap resamples)", fontsize=FONT_PT)
        bar.ax.tick_params(labelsize=FONT_PT - 1)
    legend = [
        Patch(fc=TREATMENT_COLOUR, ec="#555555", label=f"{treatment}, {outcome}"),
        Patch(fc=ADJUST_COLOUR, ec="#555555", label="adjustment set"),
        Line2D([], [], color=STABILITY_COLOURS[1], lw=4.0, label=f"{treatment} → {outcome} path"),
        Line2D([], [], color=STABILITY_COLOURS[1], lw=1.8, ls="--", label="unstable edge"),
    ]
    ax.legend(
        handles=legend, fontsize=FONT_PT - 1, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, frameon=False
    )
    ax.set_title(f"causal graph: {len(nodes)} variables, {len(edges)} edges", fontsize=FONT_PT + 1)
    for axis, values in ((ax.set_xlim, [x for x, _ in pos.values()]), (ax.set_ylim, [y for _, y in pos.values()])):
        pad = 0.12 * (max(values, default=0) - min(values, default=0)) + 0.1  # room for the label boxes
        axis(min(values, default=0) - pad, max(values, default=0) + pad)
    ax.axis("off")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
