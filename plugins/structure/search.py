"""pgmpy's ``HillClimbSearch`` that only pays for the moves it may make.

pgmpy's search loop (tabu list, ``max_indegree``, ``epsilon``, expert knowledge, start DAG) is
kept as it is; only the generator of legal moves is replaced. pgmpy's walks every ordered pair
of variables on every step and runs a path search for each before it looks at the forbidden
list; this one walks a fixed list of candidate edges (all pairs minus forbidden ones, or a
skeleton from a pre-pass) and answers "would this edge close a cycle" from descendant sets
computed once per step.
"""

from __future__ import annotations

from collections.abc import Generator, Hashable, Iterable
from itertools import permutations

import networkx as nx
from pgmpy.base import DAG
from pgmpy.causal_discovery import GES, HillClimbSearch
from pgmpy.causal_discovery.ExpertKnowledge import ExpertKnowledge
from pgmpy.structure_score import BaseStructureScore

from causalrec_plugins.structure.skeleton import checked_frame

Edge = tuple[Hashable, Hashable]


class CandidateHillClimbSearch(HillClimbSearch):
    """``HillClimbSearch`` restricted to ``candidate_edges`` (``None``: every ordered pair)."""

    def __init__(
        self,
        scoring_method: str | BaseStructureScore | None = None,
        start_dag: DAG | None = None,
        tabu_length: int = 100,
        max_indegree: int | None = None,
        expert_knowledge: ExpertKnowledge | None = None,
        return_type: str = "dag",
        epsilon: float = 1e-4,
        max_iter: int = int(1e6),
        show_progress: bool = False,
        candidate_edges: Iterable[Edge] | None = None,
        keep_adjacent: Iterable[Edge] | None = None,
    ) -> None:
        super().__init__(
            scoring_method=scoring_method,
            start_dag=start_dag,
            tabu_length=tabu_length,
            max_indegree=max_indegree,
            expert_knowledge=expert_knowledge,
            return_type=return_type,
            epsilon=epsilon,
            max_iter=max_iter,
            show_progress=show_progress,
        )
        self.candidate_edges = candidate_edges
        self.keep_adjacent = keep_adjacent

    def _check_fit_data(self, X):
        return checked_frame(self, X)

    def _keep(self) -> set[frozenset]:
        if getattr(self, "_keep_cache", None) is None:
            self._keep_cache = {frozenset(e) for e in self.keep_adjacent or ()}
        return self._keep_cache

    def _allowed(self, forbidden: set) -> list[Edge]:
        key = id(forbidden), len(forbidden)
        if getattr(self, "_allowed_key", None) != key:
            pool = permutations(self.variables_, 2) if self.candidate_edges is None else self.candidate_edges
            self._allowed_cache = sorted({tuple(e) for e in pool} - set(forbidden), key=str)
            self._allowed_set = set(self._allowed_cache)
            self._allowed_key = key
        return self._allowed_cache

    def _legal_operations_dag(
        self,
        model: DAG,
        scoring_method: BaseStructureScore,
        tabu_list,
        max_indegree: int,
        forbidden_edges,
        required_edges,
    ) -> Generator[tuple[tuple[str, Edge], float]]:
        tabu = set(tabu_list)
        keep = self._keep()
        desc = {v: nx.descendants(model, v) for v in model.nodes()}
        parents = {v: tuple(model.predecessors(v)) for v in model.nodes()}
        score = scoring_method.local_score
        prior = scoring_method.structure_prior_ratio
        for x, y in self._allowed(forbidden_edges):
            if model.has_edge(x, y) or model.has_edge(y, x) or x in desc[y]:
                continue
            operation = ("+", (x, y))
            if operation in tabu or len(parents[y]) + 1 > max_indegree:
                continue
            yield operation, score(y, parents[y] + (x,)) - score(y, parents[y]) + prior("+")
        for x, y in sorted(model.edges()):
            if ("-", (x, y)) not in tabu and (x, y) not in required_edges and frozenset((x, y)) not in keep:
                kept = tuple(p for p in parents[y] if p != x)
                yield ("-", (x, y)), score(y, kept) - score(y, parents[y]) + prior("-")
            # flipping x -> y closes a cycle iff another path leads from x to y
            if (x, y) in required_edges or (y, x) not in self._allowed_set or len(parents[x]) + 1 > max_indegree:
                continue
            if ("flip", (x, y)) in tabu or ("flip", (y, x)) in tabu:
                continue
            if any(c != y and y in desc[c] for c in model.successors(x)):
                continue
            new_x = parents[x] + (y,)
            new_y = tuple(p for p in parents[y] if p != x)
            delta = score(x, new_x) + score(y, new_y) - score(x, parents[x]) - score(y, parents[y])
            yield ("flip", (x, y)), delta + prior("flip")


class CodedGES(GES):
    """pgmpy's ``GES`` that takes the coded frame as it is (see ``checked_frame``)."""

    def _check_fit_data(self, X):
        return checked_frame(self, X)
