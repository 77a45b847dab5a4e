"""What every built-in structure learner does around its algorithm.

``learn`` codes the table (reporting missing values, single-valued and many-levelled
variables instead of failing on them), checks and combines the expert knowledge before any
learning, leaves single-valued variables out of the search (they are isolated nodes: nothing
in the data can depend on a constant, and a CI test on one has no degrees of freedom), runs
the algorithm, and makes sure the answer obeys the knowledge. What happened to the data is
kept in ``report_`` for the materialization's metadata.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence

import networkx as nx
import polars as pl

from causalrec_assets.plugin_api import Edge, Knowledge, PluginContext, StructurePlugin
from causalrec_plugins.structure.knowledge import KnowledgeError, LearnerConfig
from causalrec_plugins.structure.table import CodedTable, coded_table
from causalrec_toolkit.counts import COUNT


class CausalrecStructure(StructurePlugin):
    """Base of the built-in learners: subclasses implement ``learn_table``."""

    Config = LearnerConfig
    accepts_counts = True  # every built-in learner counts: a count table is all it needs

    def report(self) -> dict[str, object]:
        return dict(getattr(self, "report_", {}))

    def learn(self, data: pl.DataFrame, knowledge: Knowledge, context: PluginContext) -> list[Edge]:
        cfg: LearnerConfig = self.config  # type: ignore[assignment]
        merged = self.check_knowledge([c for c in data.columns if c != COUNT], knowledge)
        start = time.perf_counter()
        table = coded_table(data, max_levels=cfg.max_levels, count=COUNT)
        constant = table.constant()
        clash = [e for e in merged.required if e[0] in constant or e[1] in constant]
        if clash:
            raise KnowledgeError(f"required edge(s) {clash} touch a variable with a single value in the data")
        active = [n for n in table.names if n not in constant]
        self.report_ = dict(table.report)
        edges: list[Edge] = []
        if len(active) >= 2:
            edges = self.learn_table(table.select(active), _restrict(merged, active), context)
        self.check_result(table.names, edges, merged)
        self.seconds_ = time.perf_counter() - start
        context.log.info(
            "%s: %d edges over %d variables (%d rows%s) in %.2f s",
            type(self).__name__,
            len(edges),
            len(table.names),
            table.n,
            f", {table.codes.shape[0]} distinct" if table.weights is not None else "",
            self.seconds_,
        )
        return sorted(edges)

    @abstractmethod
    def learn_table(self, table: CodedTable, knowledge: Knowledge, context: PluginContext) -> list[Edge]:
        """The DAG's edges over ``table``'s variables; ``knowledge.forbidden`` lists every ruled-out pair."""

    @staticmethod
    def check_result(names: Sequence[str], edges: list[Edge], knowledge: Knowledge) -> None:
        """A learner's answer must be a DAG that honours the knowledge: anything else is a bug."""
        graph = nx.DiGraph(edges)
        graph.add_nodes_from(names)
        if not nx.is_directed_acyclic_graph(graph):
            raise RuntimeError(f"structure learner returned a cycle: {nx.find_cycle(graph)}")
        bad = sorted(set(edges) & {tuple(e) for e in knowledge.forbidden})
        missing = sorted({tuple(e) for e in knowledge.required} - set(edges))
        if bad or missing:
            raise RuntimeError(f"structure learner broke the knowledge: forbidden {bad}, missing required {missing}")


def _restrict(knowledge: Knowledge, names: Sequence[str]) -> Knowledge:
    keep = set(names)
    return Knowledge(
        tiers=[[v for v in t if v in keep] for t in knowledge.tiers],
        exogenous=[v for v in knowledge.exogenous if v in keep],
        required=[e for e in knowledge.required if e[0] in keep and e[1] in keep],
        forbidden=[e for e in knowledge.forbidden if e[0] in keep and e[1] in keep],
    )
