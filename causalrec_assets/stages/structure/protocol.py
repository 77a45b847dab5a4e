"""The structure stage's plugin protocol: a DAG over a table of discrete variables, under knowledge."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from causalrec_assets.plugin_api import Plugin, PluginContext


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


class StructurePlugin(Plugin):
    """Learns a DAG over the columns of a table of discrete variables."""

    stage = "structure"

    @abstractmethod
    def learn(self, data: pl.DataFrame, knowledge: Knowledge, context: PluginContext) -> list[tuple[str, str]]:
        """Return the learned DAG's edges as (cause, effect) pairs."""
