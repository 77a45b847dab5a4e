"""PC-stable with majority-rule colliders, on pgmpy's ``PC`` estimator."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from causalrec_assets.plugin_api import Edge, Knowledge, PluginContext
from causalrec_plugins.structure.base import CausalrecStructure
from causalrec_plugins.structure.common import CITestConfig, run_pc
from causalrec_plugins.structure.orient import to_dag
from causalrec_plugins.structure.table import CodedTable


class PCConfig(CITestConfig):
    collider_rule: Literal["majority", "sepset"] = Field(
        default="majority",
        description=(
            "'majority': a collider when the middle variable is in under half the separating sets found "
            "(robust to one wrong test); 'sepset': when it is not in the one set the skeleton phase recorded."
        ),
    )


class PCStructure(CausalrecStructure):
    """Constraint-based: skeleton from CI tests, colliders, Meek's rules; the equivalence class
    is turned into one DAG of it (undirected edges oriented as a consistent extension)."""

    Config = PCConfig

    def learn_table(self, table: CodedTable, knowledge: Knowledge, context: PluginContext) -> list[Edge]:
        cfg: PCConfig = self.config  # type: ignore[assignment]
        pc = run_pc(table, knowledge, cfg, context, collider_rule=cfg.collider_rule)
        context.log.info(
            "PC: %d directed and %d undirected edges from %d CI tests", len(pc.directed), len(pc.undirected), pc.tests
        )
        self.cpdag_ = (pc.directed, pc.undirected)
        return to_dag(table.names, pc.directed, pc.undirected, knowledge)
