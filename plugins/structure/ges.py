"""Greedy Equivalence Search (Chickering 2002) with pgmpy's ``GES``.

pgmpy's GES searches equivalence classes with no way to forbid or require an edge, so under
expert knowledge its result is turned into a DAG that obeys the knowledge (edges turned round
or dropped where they must be, required ones added) and pgmpy's hill climbing continues from
there under the knowledge, on the same cached score. GES rescores every candidate insertion
on every step: it is the slowest learner here past a few dozen variables.
"""

from __future__ import annotations

from pydantic import Field

from causalrec_assets.plugin_api import Edge, Knowledge, PluginContext
from causalrec_plugins.structure.base import CausalrecStructure
from causalrec_plugins.structure.common import ScoreConfig, expert_knowledge
from causalrec_plugins.structure.orient import pdag_edges, to_dag
from causalrec_plugins.structure.table import CodedTable


class GESConfig(ScoreConfig):
    min_improvement: float = Field(default=1e-6, ge=0, description="Stop when no operator improves the score more.")


class GESStructure(CausalrecStructure):
    """GES forward/backward/turn phases over equivalence classes, then one DAG of the class."""

    Config = GESConfig

    def learn_table(self, table: CodedTable, knowledge: Knowledge, context: PluginContext) -> list[Edge]:
        from pgmpy.base import DAG

        from causalrec_plugins.structure.scores import CountingScore
        from causalrec_plugins.structure.search import CandidateHillClimbSearch, CodedGES

        cfg: GESConfig = self.config  # type: ignore[assignment]
        score = CountingScore(table, cfg.score, cfg.equivalent_sample_size)
        frame = table.to_pandas()
        ges = CodedGES(scoring_method=score, return_type="pdag", min_improvement=cfg.min_improvement).fit(frame)
        directed, undirected = pdag_edges(ges.causal_graph_)
        context.log.info("GES: %d directed, %d undirected edges", len(directed), len(undirected))
        dag = to_dag(table.names, directed, undirected, knowledge)
        if not (knowledge.forbidden or knowledge.required):
            return dag
        start = DAG(dag)
        start.add_nodes_from(table.names)
        search = CandidateHillClimbSearch(
            scoring_method=score, start_dag=start, expert_knowledge=expert_knowledge(knowledge)
        )
        return sorted((str(a), str(b)) for a, b in search.fit(frame).causal_graph_.edges())
