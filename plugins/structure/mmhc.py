"""Max-Min Hill Climbing (Tsamardinos, Brown & Aliferis 2006) on pgmpy.

MMPC finds each variable's candidate parents and children with CI tests (forward: add the
variable whose weakest association over subsets of the current set is strongest; backward:
drop any that a subset separates); an edge is a candidate when each end lists the other.
pgmpy's ``HillClimbSearch`` then searches from the empty graph over those candidates only.
pgmpy 1.1 has no MMHC in ``pgmpy.causal_discovery`` (its old ``MmhcEstimator`` is deprecated).
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

from causalrec_assets.plugin_api import Edge, Knowledge, PluginContext
from causalrec_plugins.structure.base import CausalrecStructure
from causalrec_plugins.structure.common import CITestConfig, TabuSearchConfig, expert_knowledge
from causalrec_plugins.structure.table import CodedTable

if TYPE_CHECKING:
    from causalrec_plugins.structure.citests import CodedCITest


class MMHCConfig(CITestConfig, TabuSearchConfig):
    """The MMPC tests' settings and the hill-climbing phase's."""


def mmpc(test: CodedCITest, target: str, pool: list[str], alpha: float, max_k: int) -> list[str]:
    """Candidate parents and children of ``target`` among ``pool``."""

    def association(x: str, s: tuple) -> float | None:
        """None when x ⊥ target | s, else how far the statistic lies above its null mean."""
        if test(x, target, list(s), significance_level=alpha):
            return None
        return float(test.statistic_) - float(test.dof_)

    cpc: list[str] = []
    weakest = {x: float("inf") for x in pool}
    open_ = sorted(pool)
    while open_:
        for x in list(open_):
            if not cpc:
                subsets: list[tuple] = [()]
            else:  # subsets without the newest member were scored in earlier rounds
                others = cpc[:-1]
                subsets = [
                    (cpc[-1], *s) for k in range(min(len(others), max_k - 1) + 1) for s in combinations(others, k)
                ]
            for s in subsets:
                a = association(x, s)
                if a is None:
                    open_.remove(x)
                    break
                weakest[x] = min(weakest[x], a)
        if not open_:
            break
        best = max(open_, key=lambda v: (weakest[v], v))
        cpc.append(best)
        open_.remove(best)
    for x in list(cpc):
        rest = [v for v in cpc if v != x]
        if any(association(x, s) is None for k in range(min(len(rest), max_k) + 1) for s in combinations(rest, k)):
            cpc.remove(x)
    return cpc


class MMHCStructure(CausalrecStructure):
    """MMPC candidate sets, then hill climbing restricted to them (see module doc)."""

    Config = MMHCConfig

    def learn_table(self, table: CodedTable, knowledge: Knowledge, context: PluginContext) -> list[Edge]:
        from causalrec_plugins.structure.citests import CodedCITest
        from causalrec_plugins.structure.scores import CountingScore
        from causalrec_plugins.structure.search import CandidateHillClimbSearch

        cfg: MMHCConfig = self.config  # type: ignore[assignment]
        test = CodedCITest(table, cfg.ci_test)
        forbidden = {tuple(e) for e in knowledge.forbidden}
        pcs: dict[str, set[str]] = {}
        for target in table.names:
            pool = [
                v for v in table.names if v != target and not ((v, target) in forbidden and (target, v) in forbidden)
            ]
            pcs[target] = set(mmpc(test, target, pool, cfg.significance_level, cfg.max_cond_vars))
        candidates = [(a, b) for a in table.names for b in pcs[a] if a in pcs[b] and (a, b) not in forbidden]
        candidates += [tuple(e) for e in knowledge.required]
        context.log.info("MMPC: %d candidate edges from %d CI tests", len(candidates) // 2, test.tests_run)
        search = CandidateHillClimbSearch(
            scoring_method=CountingScore(table, cfg.score, cfg.equivalent_sample_size),
            tabu_length=cfg.tabu_length,
            max_indegree=cfg.max_indegree or None,
            expert_knowledge=expert_knowledge(knowledge),
            candidate_edges=candidates,
        )
        search.fit(table.to_pandas())
        return sorted((str(a), str(b)) for a, b in search.causal_graph_.edges())
