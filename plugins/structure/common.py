"""Pieces the learners share: pgmpy's ``ExpertKnowledge`` from ours, and the PC pre-pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from causalrec_assets.plugin_api import Edge, Knowledge, PluginContext
from causalrec_plugins.structure.knowledge import LearnerConfig
from causalrec_plugins.structure.orient import pdag_edges
from causalrec_plugins.structure.table import CodedTable

if TYPE_CHECKING:
    from pgmpy.causal_discovery import ExpertKnowledge


def expert_knowledge(knowledge: Knowledge) -> ExpertKnowledge:
    """pgmpy's form: every ruled-out ordered pair is forbidden, required edges as they are."""
    from pgmpy.causal_discovery import ExpertKnowledge

    return ExpertKnowledge(
        forbidden_edges=[tuple(e) for e in knowledge.forbidden], required_edges=[tuple(e) for e in knowledge.required]
    )


class CITestConfig(LearnerConfig):
    """Settings of the conditional independence tests (PC, and the pre-passes of the others)."""

    ci_test: Literal["chi_square", "g_test"] = Field(
        default="chi_square",
        description="Test of X ⊥ Y | Z: Pearson chi-square (steadier in sparse tables) or the G-test.",
    )
    significance_level: float = Field(
        default=0.01, gt=0.0, lt=1.0, description="Independence is accepted when the test's p-value is at least this."
    )
    max_cond_vars: int = Field(default=5, ge=0, description="Largest conditioning set tried.")


class ScoreConfig(LearnerConfig):
    """The structure score of the score-based learners (hill climbing, MMHC's search, GES)."""

    score: Literal["bic", "aic", "bdeu", "k2"] = Field(
        default="bic",
        description=(
            "Structure score to maximise on the discrete table. On the pipeline's large tiered tables BIC drops "
            "weak confounder → outcome edges (tabular CPDs: its penalty grows with every parent configuration); "
            "'aic' keeps them."
        ),
    )
    equivalent_sample_size: float = Field(default=10.0, gt=0, description="BDeu's prior strength.")


class TabuSearchConfig(ScoreConfig):
    """Greedy search with a tabu list (hill climbing and MMHC's second phase)."""

    max_indegree: int = Field(default=0, ge=0, description="Most parents a variable may have (0: no limit).")
    tabu_length: int = Field(default=100, ge=0, description="Recent moves that may not be undone.")


@dataclass
class PCResult:
    directed: list[Edge]
    undirected: list[Edge]
    skeleton: list[Edge]
    tests: int


def run_pc(
    table: CodedTable,
    knowledge: Knowledge,
    cfg: CITestConfig,
    context: PluginContext,
    collider_rule: str = "majority",
) -> PCResult:
    """PC-stable (``StablePC``) under the knowledge: the skeleton, and its orientation."""
    from causalrec_plugins.structure.citests import CodedCITest
    from causalrec_plugins.structure.skeleton import StablePC, possible_ancestors, separated_pairs

    test = CodedCITest(table, cfg.ci_test)

    def progress(level: int, edges: int, removed: int) -> None:
        context.log.info("PC level %d: %d adjacencies left (%d removed), %d tests", level, edges, removed,
                         test.tests_run)  # fmt: skip

    pc = StablePC(
        ci_test=test,
        significance_level=cfg.significance_level,
        max_cond_vars=cfg.max_cond_vars,
        expert_knowledge=expert_knowledge(knowledge),
        ancestors=possible_ancestors(knowledge, table.names),
        separated=separated_pairs(knowledge, table.names),
        collider_rule=collider_rule,
        progress=progress,
    ).fit(table.to_pandas())
    directed, undirected = pdag_edges(pc.causal_graph_)
    skeleton = sorted(tuple(sorted(e, key=str)) for e in pc.skeleton_.edges())
    return PCResult(directed, undirected, skeleton, test.tests_run)
