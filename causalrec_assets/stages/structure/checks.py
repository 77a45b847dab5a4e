"""The structure stage's conformance checks: ``learn()`` returns a DAG over the table's columns
that honours the knowledge (tiers, exogenous variables, required and forbidden edges).

The kit adds one required edge (exposure -> outcome) and one forbidden edge (the first
attribute -> outcome) to the stage's knowledge, so a plugin that ignores either is caught.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx
import polars as pl

from causalrec_assets.stages.conformance import Kit
from causalrec_assets.stages.kit_frames import describe_exception, fail
from causalrec_assets.stages.structure.knowledge import stage_knowledge
from causalrec_assets.stages.structure.protocol import Knowledge
from causalrec_toolkit.variables import OUTCOME, TREATMENT

STAGE = "structure"


def knowledge(kit: Kit) -> Knowledge:
    """The stage's knowledge, plus one required and one forbidden edge the plugin must honour."""
    k = kit.inputs.knowledge
    first = k.tiers[0][0]
    return Knowledge(
        tiers=k.tiers, exogenous=k.exogenous, required=[(TREATMENT, OUTCOME)], forbidden=[(first, OUTCOME)]
    )


def learn(kit: Kit, data: pl.DataFrame, what: str, given: Knowledge | None = None) -> Any:
    plugin = kit.make()
    return kit.call(what, lambda: plugin.learn(data, given or knowledge(kit), kit.context()))


def run(kit: Kit) -> Any:
    return learn(kit, kit.inputs.variables, "learn()")


def same(a: Any, b: Any) -> str | None:
    return None if sorted(map(tuple, a)) == sorted(map(tuple, b)) else "the edges"


def edge_problem(edges: Any) -> str | None:
    """What keeps ``edges`` from being a list of pairs (None: nothing)."""
    if not isinstance(edges, list | tuple):
        return f"learn() must return a list of (cause, effect) pairs, got {type(edges).__name__}"
    for e in edges:
        if not (isinstance(e, list | tuple) and len(e) == 2):
            return f"every edge must be a (cause, effect) pair, got {e!r}"
    return None


def edge_list(edges: Any) -> list[tuple[Any, Any]]:
    """Fail unless ``edges`` is a list of pairs; the pairs as tuples."""
    problem = edge_problem(edges)
    if problem:
        fail(problem)
    return [tuple(e) for e in edges]


def dag_problem(edges: Any, data: pl.DataFrame, given: Knowledge) -> str | None:
    """What keeps ``edges`` from being a DAG over ``data``'s columns that honours ``given``."""
    problem = edge_problem(edges)
    if problem:
        return problem
    pairs = [tuple(e) for e in edges]
    for e in pairs:
        if not all(isinstance(v, str) for v in e):
            return f"every edge must be a (str, str) pair, got {e!r}"
    unknown = sorted({v for e in pairs for v in e} - set(data.columns))
    if unknown:
        return f"edges name variables not in the table: {unknown[:5]}"
    loops = [e for e in pairs if e[0] == e[1]]
    if loops:
        return f"self-loops: {loops[:3]}"
    if len(set(pairs)) != len(pairs):
        return "duplicated edges"
    graph = nx.DiGraph(pairs)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        return f"not acyclic: {' -> '.join([a for a, _ in cycle] + [cycle[0][0]])}"
    against = sorted(set(pairs) & given.forbidden_edges(list(data.columns)))
    if against:
        return f"edges the knowledge forbids (tiers, exogenous or forbidden list): {against[:3]}"
    missing = [e for e in given.required if e not in set(pairs)]
    if missing:
        return f"required edges missing: {missing}"
    return None


def check_output_schema(kit: Kit) -> str:
    return f"{len(edge_list(kit.main_or_fail()))} edges"


def check_dtypes(kit: Kit) -> str:
    for e in edge_list(kit.main_or_fail()):
        if not all(isinstance(v, str) for v in e):
            fail(f"variable names must be str, got {tuple(type(v).__name__ for v in e)} in {e!r}")
    return ""


def check_row_invariants(kit: Kit) -> str:
    problem = dag_problem(kit.main_or_fail(), kit.inputs.variables, knowledge(kit))
    if problem:
        fail(problem)
    return "a DAG over the table's columns that honours the knowledge"


def survives(kit: Kit, data: pl.DataFrame, what: str, clues: Sequence[str], given: Knowledge | None = None) -> str:
    """A valid DAG; or, where ``clues`` allow refusing, an error whose message holds one."""
    given = given or knowledge(kit)
    try:
        edges = kit.make().learn(data, given, kit.context())
    except Exception as exc:
        if not clues:
            fail(f"{what} must return a DAG, but raised {describe_exception(exc)}")
        if not any(c.lower() in str(exc).lower() for c in clues):
            fail(f"{what} raised an error that does not say what is wrong: {describe_exception(exc)}")
        return f"{what}: refused ({describe_exception(exc)})"
    problem = dag_problem(edges, data, given)
    if problem:
        fail(f"{what}: {problem}")
    return f"{what}: a valid DAG ({len(edges)} edges)"


def check_empty_input(kit: Kit) -> str:
    data = kit.inputs.variables.head(0)
    return survives(kit, data, "learn() on a table with no rows", clues=("empty", "row", "sample"))


def check_malformed_input(kit: Kit) -> str:
    data = kit.inputs.variables
    # Rating data: every logged pair was exposed. The stage passes such tables (with its own
    # knowledge: no required edge out of a constant) and a DAG is due.
    constant = data.with_columns(pl.lit("1").alias(TREATMENT))
    what = "learn() where exposure takes one value"
    verdicts = [survives(kit, constant, what, clues=(), given=stage_knowledge(constant))]
    column = knowledge(kit).tiers[0][0]
    holed = data.with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col(column)).alias(column)
    )
    what = f"learn() on a table with nulls in {column}"
    verdicts.append(survives(kit, holed, what, clues=(column, "null", "NaN", "missing")))
    return "; ".join(verdicts)
