"""pgmpy's ``PC`` with a skeleton phase that stops testing an edge once it is separated.

pgmpy 1.1's "stable" skeleton keeps testing *every* candidate separating set of an edge after
one has separated it (it returns their union), so most of its time goes to tests whose answer
changes nothing. This one is PC-stable as published (Colombo & Maathuis 2014): adjacencies
are frozen at the start of each level, an edge is removed at its first separating set, and
that set is its witness. A conditioning set only holds variables the knowledge allows to be an
ancestor of one end of the edge (a minimal separating set has no others; conditioning on a
later variable, such as the outcome when testing an attribute against exposure, can open a
collider and remove a true edge). Orientation is in ``orient``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

import networkx as nx
import numpy as np
from pgmpy.base import PDAG, UndirectedGraph
from pgmpy.causal_discovery import PC

from causalrec_assets.plugin_api import Edge, Knowledge
from causalrec_plugins.structure.orient import orient


class StablePC(PC):
    """``pgmpy.causal_discovery.PC`` with the skeleton phase described in the module docstring
    and an orientation phase that gives the same answer in every process.

    ``ancestors`` (variable → the variables that may be its ancestors) limits conditioning sets;
    pairs in ``separated`` (both directions forbidden) start out non-adjacent. pgmpy's own collider and Meek steps walk
    Python sets of names, whose order changes with the interpreter's hash seed, so two runs on
    the same data could orient conflicting colliders differently; these walk sorted names."""

    def __init__(
        self,
        ci_test=None,
        significance_level: float = 0.01,
        max_cond_vars: int = 5,
        expert_knowledge=None,
        return_type: str = "pdag",
        ancestors: dict[str, set[str]] | None = None,
        separated: Iterable[Edge] | None = None,
        collider_rule: str = "majority",
        progress=None,
    ) -> None:
        super().__init__(
            variant="stable",
            ci_test=ci_test,
            return_type=return_type,
            significance_level=significance_level,
            max_cond_vars=max_cond_vars,
            expert_knowledge=expert_knowledge,
            show_progress=False,
        )
        self.ancestors = ancestors
        self.separated = separated
        self.collider_rule = collider_rule
        self.progress = progress

    def _check_fit_data(self, X):
        return checked_frame(self, X)

    def _build_skeleton(self, data, independencies=None, ci_test=None, significance_level=0.01, max_cond_vars=5,
                        **_ignored):  # fmt: skip
        variables = list(data.columns)
        ancestors = self.ancestors
        graph = nx.complete_graph(variables, create_using=nx.Graph)
        sepsets: dict[frozenset, tuple] = {}
        for a, b in self.separated or ():
            if graph.has_edge(a, b):
                graph.remove_edge(a, b)
                sepsets[frozenset((a, b))] = ()
        level = 0
        while level <= max_cond_vars and any(graph.degree(v) > level for v in variables):
            frozen = {v: sorted(graph.neighbors(v), key=str) for v in variables}
            removed = 0
            for u, v in sorted((tuple(sorted(e, key=str)) for e in graph.edges()), key=str):
                allowed = None if ancestors is None else ancestors[u] | ancestors[v]
                for s in _candidate_sets(u, v, frozen, level, allowed):
                    if ci_test(u, v, list(s), significance_level=significance_level):
                        graph.remove_edge(u, v)
                        sepsets[frozenset((u, v))] = tuple(s)
                        removed += 1
                        break
            if self.progress is not None:
                self.progress(level, graph.number_of_edges(), removed)
            level += 1
        skeleton = UndirectedGraph(graph.edges())
        skeleton.add_nodes_from(variables)
        return skeleton, sepsets

    def _fit(self, X, independencies=None):
        self.ci_test_ = self.ci_test
        knowledge = self.expert_knowledge
        self.skeleton_, self.separating_sets_ = self._build_skeleton(
            data=X,
            ci_test=self.ci_test_,
            significance_level=self.significance_level,
            max_cond_vars=self.max_cond_vars,
        )
        separating = None
        if self.collider_rule == "majority":
            test, alpha = self.ci_test_, self.significance_level

            def separating(x: str, y: str, s: tuple) -> bool:
                return bool(test(x, y, list(s), significance_level=alpha))

        directed, undirected = orient(
            list(X.columns),
            [tuple(e) for e in self.skeleton_.edges()],
            self.separating_sets_,
            forbidden=set(map(tuple, knowledge.forbidden_edges)) if knowledge else set(),
            required=set(map(tuple, knowledge.required_edges)) if knowledge else set(),
            separates=separating,
            max_cond_vars=self.max_cond_vars,
        )
        pdag = PDAG(directed_ebunch=directed, undirected_ebunch=undirected)
        pdag.add_nodes_from(list(X.columns))
        self.causal_graph_ = pdag
        self.adjacency_matrix_ = nx.to_pandas_adjacency(pdag, weight=1, dtype="int")
        return self


def checked_frame(estimator, X):
    """What pgmpy's ``_check_fit_data`` records, without its per-cell Python scan: the frame
    comes from a ``CodedTable`` (categorical, no missing values, string states)."""
    if X.shape[1] == 0 or X.shape[0] < 2:
        raise ValueError(f"need at least 2 rows and 1 variable, got shape {X.shape}")
    estimator.n_features_in_ = X.shape[1]
    estimator.feature_names_in_ = np.asarray(X.columns, dtype=object)
    return X


def _candidate_sets(u: str, v: str, frozen: dict, level: int, allowed: set[str] | None):
    seen = set()
    for a, b in ((u, v), (v, u)):
        pool = [w for w in frozen[a] if w != b and (allowed is None or w in allowed)]
        for s in combinations(pool, level):
            if s not in seen:
                seen.add(s)
                yield s


def separated_pairs(knowledge: Knowledge, names: Sequence[str]) -> list[Edge]:
    """Pairs that may not be adjacent at all: both directions forbidden."""
    forbidden = {tuple(e) for e in knowledge.forbidden}
    return [(a, b) for a, b in combinations(names, 2) if (a, b) in forbidden and (b, a) in forbidden]


def possible_ancestors(knowledge: Knowledge, names: Sequence[str]) -> dict[str, set[str]] | None:
    """For each variable, the variables with a directed path to it in the graph of allowed
    edges; None when nothing is forbidden (every variable may be an ancestor of every other)."""
    forbidden = {tuple(e) for e in knowledge.forbidden}
    if not forbidden:
        return None
    allowed = nx.DiGraph([(a, b) for a in names for b in names if a != b and (a, b) not in forbidden])
    allowed.add_nodes_from(names)
    return {v: set(nx.ancestors(allowed, v)) for v in names}
