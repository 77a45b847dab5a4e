"""Expert knowledge from config: tiers, required and forbidden edges, checked before any work.

Every built-in structure plugin's typed config extends ``LearnerConfig``, so the launchpad
shows the same knowledge fields for each. What the config says is combined with what the
structure stage passes (its own tiers: attributes → exposure → outcome, attributes
exogenous): an edge is forbidden if either forbids it. Defects that need no data (a cycle of
required edges, an edge both required and forbidden, a variable in two tiers, a required
edge pointing back across tiers) fail when the config is read; unknown variable names and
conflicts with the stage's own knowledge fail as soon as the variables are known, before
any learning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import networkx as nx
from pydantic import Field, model_validator

from causalrec_assets.plugin_api import PluginConfig
from causalrec_assets.stages.structure.protocol import Knowledge


class KnowledgeError(ValueError):
    """A configuration of expert knowledge that cannot be satisfied or names unknown variables."""


class LearnerConfig(PluginConfig):
    """Settings every built-in structure learner shares: expert knowledge, awkward columns,
    bootstrap edge stability."""

    tiers: list[list[str]] = Field(
        default_factory=list,
        description=(
            "Tiers of variables, earliest first: nothing in a later tier may cause a variable in an earlier one. "
            "Combined with the structure stage's own tiers (attributes → exposure → outcome)."
        ),
    )
    required_edges: list[list[str]] = Field(
        default_factory=list, description='Edges that must be in the graph, as [cause, effect] pairs: [["a", "b"]].'
    )
    forbidden_edges: list[list[str]] = Field(
        default_factory=list, description="Edges that must not be in the graph, as [cause, effect] pairs."
    )
    max_levels: int = Field(
        default=50,
        ge=2,
        description="A variable with more levels keeps its most frequent ones and lumps the rest into 'other'.",
    )
    bootstrap: int = Field(
        default=20,
        ge=0,
        description="Resamples for edge stability in the structure stage (0: none).",
    )
    resampling: Literal["subsample", "bootstrap"] = Field(
        default="subsample",
        description=(
            "'subsample': a share of the rows without replacement (keeps CI tests calibrated); 'bootstrap': n rows "
            "with replacement (duplicates inflate chi-square and G statistics: spurious edges look stable)."
        ),
    )
    subsample_fraction: float = Field(default=0.5, gt=0.0, lt=1.0, description="Share of rows in each subsample.")
    unstable_below: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Edges found in fewer than this fraction of resamples are flagged unstable.",
    )
    n_jobs: int = Field(
        default=2,
        ge=1,
        description="Processes for the bootstrap resamples (started only where they save more than they cost).",
    )

    @model_validator(mode="after")
    def _knowledge_is_consistent(self) -> LearnerConfig:
        check_static(self.knowledge())
        return self

    def knowledge(self) -> Knowledge:
        return Knowledge(
            tiers=[list(t) for t in self.tiers],
            required=[_pair(e, "required_edges") for e in self.required_edges],
            forbidden=[_pair(e, "forbidden_edges") for e in self.forbidden_edges],
        )


def _pair(edge: Sequence[str], where: str) -> tuple[str, str]:
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
