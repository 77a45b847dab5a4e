"""The structure stage's plugin protocol: a DAG over a table of discrete variables, under knowledge."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import polars as pl

from causalrec_assets.plugin_api import Plugin, PluginContext
from causalrec_assets.stages.structure.knowledge import Edge, Knowledge, combine, config_knowledge
from causalrec_toolkit.counts import COUNT

__all__ = ["COUNT", "Edge", "Knowledge", "StructurePlugin"]



class StructurePlugin(Plugin):
    """Learns a DAG over the columns of a table of discrete variables.

    Required: ``learn``. Optional (declared since plugin API 1.2; called since 1.0):
    ``check_knowledge``, run before any work so a bad configuration fails first (the default
    combines the stage's knowledge with the config's when the config extends
    ``KnowledgeConfig``), and ``report``, facts about the last ``learn`` for the
    materialization (the default has none). The stage's bootstrap edge stability follows the
    config's ``StabilityConfig`` fields when the config extends it (else its defaults).

    ``accepts_counts`` (since 1.3): True when ``learn`` takes a count table, the distinct rows
    of the variable table with their number of rows in the ``COUNT`` column. A log of millions
    of pairs has a few thousand distinct rows of its discrete variables, so a learner that
    counts (scores, CI tests) does the same work on far fewer rows, and a bootstrap resample
    is a reweighting of the counts. False (the default): ``learn`` gets the rows themselves."""

    stage = "structure"
    accepts_counts: ClassVar[bool] = False

    @abstractmethod
    def learn(self, data: pl.DataFrame, knowledge: Knowledge, context: PluginContext) -> list[Edge]:
        """Return the learned DAG's edges as (cause, effect) pairs."""

    def check_knowledge(self, names: Sequence[str], knowledge: Knowledge) -> Knowledge:
        """The knowledge ``learn`` will obey, checked against ``names``; raises
        ``KnowledgeError`` naming the defect (unknown variable, cycle, required edge ruled out)."""
        return combine(knowledge, config_knowledge(self.config), list(names))

    def report(self) -> Mapping[str, Any]:
        """What happened to the data in the last ``learn`` (levels lumped, columns dropped)."""
        return {}
