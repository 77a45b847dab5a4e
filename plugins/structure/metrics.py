"""How far a learned graph is from the true one: SHD, CPDAG-SHD, skeleton and directed-edge F1.

Two DAGs in the same Markov equivalence class fit any data equally well, so the fair score
for a learner is the distance between equivalence classes (CPDAG-SHD): one unit per pair of
variables whose mark differs (missing, extra, reversed, or directed in one and undirected in
the other). ``shd`` is pgmpy's DAG-to-DAG count for reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pgmpy.metrics import SHD

from causalrec_assets.plugin_api import Edge
from causalrec_plugins.structure.orient import as_dag


def cpdag_marks(names: Sequence[str], dag_edges: Iterable[Edge]) -> dict[frozenset, object]:
    """The equivalence class of a DAG: pair → (cause, effect) if compelled, "-" if reversible."""
    pdag = as_dag(names, dag_edges).to_pdag()
    return pdag_marks(pdag.directed_edges, pdag.undirected_edges)


def pdag_marks(directed: Iterable[Edge], undirected: Iterable[Edge]) -> dict[frozenset, object]:
    marks: dict[frozenset, object] = {frozenset(e): tuple(e) for e in directed}
    marks.update({frozenset(e): "-" for e in undirected})
    return marks


def marks_distance(truth: dict[frozenset, object], learned: dict[frozenset, object]) -> int:
    return sum(1 for pair in set(truth) | set(learned) if truth.get(pair) != learned.get(pair))


def f1(truth: set, learned: set) -> float:
    if not truth and not learned:
        return 1.0
    hits = len(truth & learned)
    return 0.0 if hits == 0 else 2 * hits / (len(truth) + len(learned))


def compare(
    names: Sequence[str],
    true_edges: Iterable[Edge],
    dag_edges: Iterable[Edge],
    class_marks: dict[frozenset, object] | None = None,
) -> dict[str, float]:
    """Every figure for one learned DAG (``class_marks``: the learner's own equivalence class
    when it returns one, e.g. PC's PDAG; else the DAG's class)."""
    true_edges, dag_edges = [tuple(e) for e in true_edges], [tuple(e) for e in dag_edges]
    learned_class = class_marks if class_marks is not None else cpdag_marks(names, dag_edges)
    return {
        "cpdag_shd": marks_distance(cpdag_marks(names, true_edges), learned_class),
        "shd": int(SHD()(true_causal_graph=as_dag(names, true_edges), est_causal_graph=as_dag(names, dag_edges))),
        "skeleton_f1": f1({frozenset(e) for e in true_edges}, {frozenset(e) for e in dag_edges}),
        "directed_f1": f1(set(true_edges), set(dag_edges)),
        "edges": len(dag_edges),
    }
