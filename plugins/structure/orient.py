"""Orienting a skeleton, and turning a partially directed graph into a DAG, the same way in
every process: colliders (majority rule), the knowledge, Meek's rules, and a consistent
extension, each walking sorted names (pgmpy's versions walk Python sets of names, whose order
changes with the interpreter's hash seed)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import networkx as nx

from causalrec_assets.plugin_api import Edge, Knowledge

if TYPE_CHECKING:
    from pgmpy.base import DAG


def orient(
    names: Sequence[str],
    skeleton: Iterable[Edge],
    sepsets: dict[frozenset, tuple],
    forbidden: set[Edge] | None = None,
    required: set[Edge] | None = None,
    separates: Callable[[str, str, tuple], bool] | None = None,
    max_cond_vars: int = 5,
) -> tuple[list[Edge], list[Edge]]:
    """Colliders, then the knowledge, then Meek's rules 1–3, each in sorted order. A collider
    that would reverse an edge already oriented is skipped.

    With ``separates`` (a CI test) colliders follow the majority rule (Colombo & Maathuis
    2014): x -> z <- y when z lies in fewer than half of the sets, drawn from the neighbours
    of x or of y, that separate x and y; at exactly half the triple is left alone. Without it,
    z must be absent from the one separating set the skeleton phase recorded — which turns one
    weak, wrongly accepted independence into a wrong collider and everything Meek's rules
    derive from it."""
    forbidden, required = forbidden or set(), required or set()
    adj: dict[str, set[str]] = {v: set() for v in names}
    for a, b in skeleton:
        adj[a].add(b)
        adj[b].add(a)
    arrow: set[Edge] = set()  # (a, b): a -> b

    def oriented(a: str, b: str) -> bool:
        return (a, b) in arrow or (b, a) in arrow

    def point(a: str, b: str) -> bool:
        if (b, a) in arrow:
            return False
        if (a, b) not in arrow:
            arrow.add((a, b))
            return True
        return False

    for a, b in sorted(required):
        if b in adj[a]:
            point(a, b)
    for z in sorted(names):
        for x, y in combinations(sorted(adj[z]), 2):
            if y in adj[x] or not _is_collider(x, y, z, adj, sepsets, separates, max_cond_vars):
                continue
            if (z, x) in arrow or (z, y) in arrow or (x, z) in forbidden or (y, z) in forbidden:
                continue
            point(x, z)
            point(y, z)
    for a in sorted(names):
        for b in sorted(adj[a]):
            if not oriented(a, b) and (a, b) in forbidden and (b, a) not in forbidden:
                point(b, a)
    changed = True
    while changed:
        changed = False
        for b in sorted(names):
            parents = sorted(a for a in adj[b] if (a, b) in arrow)
            for c in sorted(adj[b]):
                if oriented(b, c):
                    continue
                # R1: a -> b - c, a and c not adjacent  =>  b -> c
                if any(c not in adj[a] and a != c for a in parents) and (b, c) not in forbidden:
                    changed |= point(b, c)
                    continue
                # R2: b -> w -> c and b - c  =>  b -> c
                if any((b, w) in arrow and (w, c) in arrow for w in adj[b] & adj[c]) and (b, c) not in forbidden:
                    changed |= point(b, c)
                    continue
                # R3: b - w1 -> c <- w2 - b, w1 and w2 not adjacent  =>  b -> c
                ws = sorted(w for w in adj[b] & adj[c] if not oriented(b, w) and (w, c) in arrow)
                if any(w2 not in adj[w1] for w1, w2 in combinations(ws, 2)) and (b, c) not in forbidden:
                    changed |= point(b, c)
    edges = {tuple(sorted(e)) for e in skeleton}
    undirected = sorted(e for e in edges if not oriented(*e))
    return sorted(arrow), undirected


def _is_collider(x, y, z, adj, sepsets, separates, max_cond_vars: int) -> bool:
    recorded = sepsets.get(frozenset((x, y)), ())
    if separates is None:
        return z not in recorded
    found = 0
    with_z = 0
    seen: set[tuple] = set()
    for a, b in ((x, y), (y, x)):
        pool = sorted(adj[a] - {b})
        for size in range(min(len(pool), max_cond_vars) + 1):
            for s in combinations(pool, size):
                if s in seen:
                    continue
                seen.add(s)
                if separates(x, y, s):
                    found += 1
                    with_z += z in s
    if found == 0:
        return z not in recorded
    return 2 * with_z < found


def pdag_edges(graph) -> tuple[list[Edge], list[Edge]]:
    """(directed, undirected) edges of a pgmpy PDAG or DAG."""
    from pgmpy.base import PDAG

    if isinstance(graph, PDAG):
        return sorted(graph.directed_edges), sorted(tuple(sorted(e, key=str)) for e in graph.undirected_edges)
    return sorted(graph.edges()), []


def to_dag(
    names: Sequence[str],
    directed: Iterable[Edge],
    undirected: Iterable[Edge],
    knowledge: Knowledge | None = None,
) -> list[Edge]:
    """A DAG that keeps as much of a PDAG as the knowledge and acyclicity allow.

    Required edges first; then directed edges (turned round when only the other direction is
    allowed); then undirected edges oriented as a consistent extension would (pgmpy's
    ``PDAG.to_dag``) when that respects the knowledge, else each in an allowed direction that
    closes no cycle. An edge neither direction of which fits is dropped."""
    forbidden = {tuple(e) for e in (knowledge.forbidden if knowledge else [])}
    required = [tuple(e) for e in (knowledge.required if knowledge else [])]
    directed, undirected = sorted(directed), sorted(undirected)
    extension = consistent_extension(names, directed, undirected)
    dag = nx.DiGraph()
    dag.add_nodes_from(names)

    def place(a: str, b: str) -> bool:
        for x, y in ((a, b), (b, a)):
            if (x, y) in forbidden or dag.has_edge(y, x):
                continue
            if dag.has_edge(x, y):
                return True
            if not nx.has_path(dag, y, x):
                dag.add_edge(x, y)
                return True
        return False

    for a, b in required:
        dag.add_edge(a, b)
    fixed = {frozenset(d) for d in directed}
    for a, b in directed + [e for e in extension if frozenset(e) not in fixed]:
        place(a, b)
    for a, b in undirected:
        if not (dag.has_edge(a, b) or dag.has_edge(b, a)):
            place(a, b)
    return sorted(dag.edges())


def consistent_extension(names: Sequence[str], directed: list[Edge], undirected: list[Edge]) -> list[Edge]:
    """Dor & Tarsi (1992): orient the undirected edges of a PDAG without new colliders or
    cycles, taking nodes in sorted order (pgmpy's ``PDAG.to_dag`` falls back to the order of
    a Python set when no such extension exists). Edges it cannot orient that way are left out
    (the caller places them)."""
    out_: dict[str, set[str]] = {v: set() for v in names}
    in_: dict[str, set[str]] = {v: set() for v in names}
    und: dict[str, set[str]] = {v: set() for v in names}
    for a, b in directed:
        out_[a].add(b)
        in_[b].add(a)
    for a, b in undirected:
        und[a].add(b)
        und[b].add(a)
    remaining = sorted(names)
    oriented: list[Edge] = []
    while remaining:
        for x in remaining:
            if out_[x]:
                continue
            neighbours = und[x] | in_[x]
            if all(y == z or z in und[y] | in_[y] | out_[y] for y in und[x] for z in neighbours):
                oriented += [(y, x) for y in sorted(und[x])]
                for y in und[x]:
                    und[y].discard(x)
                for y in in_[x]:
                    out_[y].discard(x)
                und[x], in_[x] = set(), set()
                remaining.remove(x)
                break
        else:
            break
    return sorted(directed) + sorted(oriented)


def as_dag(names: Sequence[str], edges: Iterable[Edge]) -> DAG:
    from pgmpy.base import DAG

    dag = DAG()
    dag.add_nodes_from(names)
    dag.add_edges_from(list(edges))
    return dag
