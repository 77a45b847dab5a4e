"""Fitting, storing and querying the discrete Bayesian network with pgmpy.

The fitted network is stored as a tidy CPD table (variable, state, parents, probability) so
it is a plain Parquet file like every other asset. Interventional queries mutilate the
graph with ``model.do()`` and run ``VariableElimination`` on it: pgmpy 1.1's
``CausalInference.query(do=…, evidence=…)`` is wrong when the evidence lies outside the
adjustment set (pgmpy issue #3543).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np
import polars as pl

from causalrec_toolkit.counts import COUNT
from causalrec_toolkit.variables import OUTCOME, TREATMENT

__all__ = [
    "CPD_COLUMNS",
    "adjustment_set",
    "as_network",
    "cpds_to_frame",
    "descendants",
    "fit_network",
    "frame_to_network",
    "interventional",
    "network_edges",
]

if TYPE_CHECKING:
    from pgmpy.models import DiscreteBayesianNetwork

CPD_COLUMNS = ["variable", "state", "parents", "probability"]


def as_network(nodes: Iterable[str], edges: Iterable[Sequence[str]]) -> DiscreteBayesianNetwork:
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork()
    model.add_nodes_from(list(nodes))
    model.add_edges_from([tuple(e) for e in edges])
    return model


def fit_network(
    data: pl.DataFrame, edges: Iterable[Sequence[str]], equivalent_sample_size: float = 1.0
) -> DiscreteBayesianNetwork:
    """CPDs by Bayesian estimation with a weak BDeu prior (no zero-probability empty cells).
    ``data`` is the variable table or its count table (``COUNT`` holds each row's count, which
    pgmpy reads as the row's weight: the same CPDs from a few thousand rows)."""
    from pgmpy.parameter_estimator import DiscreteBayesianEstimator

    weights = data[COUNT].cast(pl.Float64).to_numpy() if COUNT in data.columns else None
    variables = data.drop(COUNT, strict=False)
    frame = variables.select(pl.all().cast(pl.String).cast(pl.Categorical)).to_pandas()
    model = as_network(variables.columns, edges)
    state_names = {c: sorted(str(v) for v in frame[c].cat.categories.tolist()) for c in frame.columns}
    model.fit(
        frame,
        estimator=DiscreteBayesianEstimator(
            prior_type="BDeu", equivalent_sample_size=equivalent_sample_size, state_names=state_names
        ),
        sample_weight=weights,
    )
    return model


def cpds_to_frame(model: DiscreteBayesianNetwork) -> pl.DataFrame:
    """One row per (variable, state, parent assignment)."""
    rows: dict[str, list] = {c: [] for c in CPD_COLUMNS}
    for cpd in model.get_cpds():
        names = cpd.variables
        states = [cpd.state_names[v] for v in names]
        values = cpd.values
        for index in np.ndindex(values.shape):
            parents = {names[k]: str(states[k][index[k]]) for k in range(1, len(names))}
            rows["variable"].append(str(cpd.variable))
            rows["state"].append(str(states[0][index[0]]))
            rows["parents"].append(json.dumps(parents, sort_keys=True))
            rows["probability"].append(float(values[index]))
    return pl.DataFrame(
        rows, schema={"variable": pl.String, "state": pl.String, "parents": pl.String, "probability": pl.Float64}
    )


def network_edges(cpd_frame: pl.DataFrame) -> list[tuple[str, str]]:
    """The graph's edges, read from the CPD table: each variable's parents point into it."""
    first = cpd_frame.unique("variable", keep="first", maintain_order=True)
    return sorted(
        (parent, child)
        for child, parents in zip(first["variable"], first["parents"], strict=True)
        for parent in json.loads(parents)
    )


def frame_to_network(cpd_frame: pl.DataFrame, edges: Iterable[Sequence[str]] | None = None) -> DiscreteBayesianNetwork:
    """Rebuild the fitted network from its CPD table (and the graph's edges, else read from it)."""
    from pgmpy.factors.discrete import TabularCPD

    variables = cpd_frame["variable"].unique(maintain_order=True).to_list()
    edges = network_edges(cpd_frame) if edges is None else edges
    model = as_network(variables, edges)
    states: dict[str, list[str]] = {}
    for var in variables:
        states[var] = cpd_frame.filter(pl.col("variable") == var)["state"].unique(maintain_order=True).to_list()
    for var in variables:
        parents = sorted(model.get_parents(var))
        part = cpd_frame.filter(pl.col("variable") == var)
        ordered = [var] + _cpd_parent_order(part, parents)
        shape = [len(states[v]) for v in ordered]
        values = np.zeros(shape)
        index_of = {v: {s: i for i, s in enumerate(states[v])} for v in ordered}
        for state, parent_json, prob in part.select("state", "parents", "probability").iter_rows():
            assignment = json.loads(parent_json)
            idx = (index_of[var][state],) + tuple(index_of[p][assignment[p]] for p in ordered[1:])
            values[idx] = prob
        cpd = TabularCPD(
            var,
            shape[0],
            values.reshape(shape[0], -1),
            evidence=ordered[1:] or None,
            evidence_card=shape[1:] or None,
            state_names={v: states[v] for v in ordered},
        )
        model.add_cpds(cpd)
    return model


def _cpd_parent_order(part: pl.DataFrame, parents: list[str]) -> list[str]:
    """The parent order in which the CPD rows were written (dict order of the first row)."""
    if not parents or part.is_empty():
        return parents
    first = list(json.loads(part["parents"][0]).keys())
    return first if sorted(first) == sorted(parents) else parents


def interventional(
    model: DiscreteBayesianNetwork,
    treatment: str = TREATMENT,
    outcome: str = OUTCOME,
    evidence: Mapping[str, str] | None = None,
    positive: str = "1",
) -> dict[str, float]:
    """P(outcome = positive | do(treatment = t), evidence) for every state t of the treatment."""
    from pgmpy.inference import VariableElimination

    mutilated = model.do([treatment])
    engine = VariableElimination(mutilated)
    evidence = dict(evidence or {})
    known = set(mutilated.nodes())
    evidence = {
        k: v
        for k, v in evidence.items()
        if k in known and k not in (treatment, outcome) and v in model.get_cpds(k).state_names[k]
    }  # a level never seen in training carries no information: leave it out
    out = {}
    for t in model.get_cpds(treatment).state_names[treatment]:
        result = engine.query([outcome], evidence={treatment: t, **evidence}, show_progress=False)
        out[str(t)] = float(result.get_value(**{outcome: positive}))
    return out


def descendants(edges: Iterable[Sequence[str]], node: str) -> set[str]:
    graph = nx.DiGraph([tuple(e) for e in edges])
    return set(nx.descendants(graph, node)) if node in graph else set()


def adjustment_set(edges: Iterable[Sequence[str]], treatment: str = TREATMENT, outcome: str = OUTCOME) -> list[str]:
    """A backdoor adjustment set read off the graph: the treatment's parents, plus the
    outcome's parents that are not descendants of the treatment (they sharpen the estimate and
    cannot open a backdoor path once the treatment's parents are conditioned on)."""
    edges = [tuple(e) for e in edges]
    parents_t = {a for a, b in edges if b == treatment}
    desc = descendants(edges, treatment) | {treatment}
    parents_y = {a for a, b in edges if b == outcome and a not in desc}
    return sorted(parents_t | parents_y)
