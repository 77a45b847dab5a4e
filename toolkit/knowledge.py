"""Expert knowledge for structure learning, and how it is checked before any work.

``Knowledge`` is what the structure stage hands a plugin (its own tiers: attributes →
exposure → outcome, attributes exogenous; ``exposure → outcome`` required; ``stage_knowledge``).
Defects that need no data (a cycle of required edges, an edge both required and forbidden, a
variable in two tiers, a required edge pointing back across tiers) are ``check_static``'s, run
when a plugin's config is read; ``combine`` checks the rest (unknown variables, conflicts with
the stage's knowledge) as soon as the variables are known, before any learning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx
import polars as pl

__all__ = [
    "Edge",
    "Knowledge",
    "KnowledgeError",
    "check_static",
    "combine",
    "edge_pair",
    "search_space",
    "stage_knowledge",
]

Edge = tuple[str, str]  # (cause, effect)


@dataclass
class Knowledge:
    """Expert knowledge for structure learning: tiers (earlier tiers cannot be caused by later
    ones), variables nothing may point into, and required / forbidden edges."""

    tiers: list[list[str]] = field(default_factory=list)
    exogenous: list[str] = field(default_factory=list)
    required: list[tuple[str, str]] = field(default_factory=list)
    forbidden: list[tuple[str, str]] = field(default_factory=list)

    def forbidden_edges(self, nodes: Sequence[str]) -> set[tuple[str, str]]:
        """Every edge ruled out by the tiers, the exogenous set and the explicit list."""
        rank = {v: i for i, tier in enumerate(self.tiers) for v in tier}
        out = set(map(tuple, self.forbidden))
        for a in nodes:
            for b in nodes:
                if a == b:
                    continue
                if b in self.exogenous:
                    out.add((a, b))
                if a in rank and b in rank and rank[a] > rank[b]:
                    out.add((a, b))
        return out


class KnowledgeError(ValueError):
    """A configuration of expert knowledge that cannot be satisfied or names unknown variables."""


def edge_pair(edge: Sequence[str], where: str) -> tuple[str, str]:
    """``[cause, effect]`` as a tuple of two names; anything else is a KnowledgeError naming ``where``."""
    if len(edge) != 2 or not all(isinstance(v, str) and v for v in edge):
        raise KnowledgeError(f"{where}: each edge is a [cause, effect] pair of variable names, got {list(edge)!r}")
    if edge[0] == edge[1]:
        raise KnowledgeError(f"{where}: {edge[0]!r} -> {edge[1]!r} is a self-loop")
    return str(edge[0]), str(edge[1])


def check_static(knowledge: Knowledge) -> None:
    """Defects visible without data: tiers overlapping, required edges that form a cycle, point
    back across tiers or into an exogenous variable, or are also forbidden."""
    seen: dict[str, int] = {}
    for i, tier in enumerate(knowledge.tiers):
        for v in tier:
            if v in seen and seen[v] != i:
                raise KnowledgeError(f"variable {v!r} is in tier {seen[v]} and tier {i}; a variable has one tier")
            seen[v] = i
    required = [tuple(e) for e in knowledge.required]
    both = sorted(set(required) & {tuple(e) for e in knowledge.forbidden})
    if both:
        raise KnowledgeError(f"edge(s) both required and forbidden: {_edges(both)}")
    graph = nx.DiGraph(required)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        raise KnowledgeError(f"required edges make a cycle: {' -> '.join([a for a, _ in cycle] + [cycle[0][0]])}")
    for a, b in required:
        if a in seen and b in seen and seen[a] > seen[b]:
            raise KnowledgeError(f"required edge {a} -> {b} points from tier {seen[a]} back to tier {seen[b]}")
        if b in knowledge.exogenous:
            raise KnowledgeError(f"required edge {a} -> {b} points into {b!r}, which is exogenous")


def combine(stage: Knowledge, config: Knowledge, names: Sequence[str]) -> Knowledge:
    """The stage's knowledge and the config's, checked against the variables ``names``.

    The result's ``forbidden`` lists every ruled-out ordered pair (tiers and exogenous
    variables expanded), so a learner needs nothing else."""
    known = set(names)
    for label, knowledge in (("config", config), ("structure stage", stage)):
        mentioned = [(f"tier {i}", v) for i, t in enumerate(knowledge.tiers) for v in t]
        mentioned += [("required edge", v) for e in knowledge.required for v in e]
        mentioned += [("forbidden edge", v) for e in knowledge.forbidden for v in e]
        mentioned += [("exogenous", v) for v in knowledge.exogenous]
        unknown = [f"{v!r} ({where})" for where, v in mentioned if v not in known]
        if unknown:
            raise KnowledgeError(
                f"{label} knowledge names unknown variable(s): {', '.join(unknown)}; "
                f"the variables are: {', '.join(names)}"
            )
    check_static(config)
    required = sorted({tuple(e) for e in stage.required} | {tuple(e) for e in config.required})
    forbidden = stage.forbidden_edges(names) | config.forbidden_edges(names)
    clash = sorted(set(required) & forbidden)
    if clash:
        raise KnowledgeError(
            f"required edge(s) {_edges(clash)} are ruled out by the tiers or exogenous variables "
            "(of the config or of the structure stage)"
        )
    merged = Knowledge(
        tiers=_merge_tiers(stage.tiers, config.tiers),
        exogenous=sorted(set(stage.exogenous) | set(config.exogenous)),
        required=[tuple(e) for e in required],  # type: ignore[misc]
        forbidden=sorted(forbidden),  # type: ignore[arg-type]
    )
    graph = nx.DiGraph(merged.required)
    if not nx.is_directed_acyclic_graph(graph):
        raise KnowledgeError(f"required edges make a cycle: {_edges(nx.find_cycle(graph))}")
    return merged


def _merge_tiers(stage: list[list[str]], config: list[list[str]]) -> list[list[str]]:
    """One tiering to show (the stage's, else the config's). Learners never read it: the
    forbidden list carries both tierings exactly."""
    return [list(t) for t in (stage or config)]


def _edges(edges) -> str:
    return ", ".join(f"{a} -> {b}" for a, b in edges)


def search_space(knowledge: Knowledge, names: Sequence[str]) -> list[tuple[str, str]]:
    """Every ordered pair a learner may still make an edge of."""
    forbidden = {tuple(e) for e in knowledge.forbidden}
    return [(a, b) for a in names for b in names if a != b and (a, b) not in forbidden]


def stage_knowledge(variables: pl.DataFrame, treatment: str = "exposure", outcome: str = "outcome") -> Knowledge:
    """What the stage knows about every causal table: attributes and derived variables come
    before exposure, exposure before outcome, and nothing causes an attribute.

    ``exposure → outcome`` is required (when both vary): it is the effect the pipeline
    estimates, and leaving it out would set that effect to zero on a failure to reject
    independence. A small, heterogeneous effect (ATE 0.02 with effects of both signs) can
    pass a 72-degree-of-freedom stratified test at α = 0.01; the effect stage's estimators and
    intervals say how large it is, and ``causal_graph``'s ``exposure_to_outcome_test``
    metadata says whether the data alone ask for the edge."""
    columns = list(variables.columns)
    attrs = [c for c in columns if c not in (treatment, outcome)]
    tiers = [attrs] + [[v] for v in (treatment, outcome) if v in columns]
    varies = all(v in columns and variables[v].n_unique() > 1 for v in (treatment, outcome))
    return Knowledge(tiers=tiers, exogenous=attrs, required=[(treatment, outcome)] if varies else [])
