"""The causal model's variables: one discrete value per (user, item) pair and variable.

User and item attributes enter as they are (numerics quantile-binned, columns with a single
value or too many levels left out and reported), plus derived variables named by what they
are: ``item_topic`` (clusters of the item embeddings), ``item_popularity`` (binned count of
the item's training rows), ``affinity`` (binned cosine between the user's taste and the item,
both from the text embeddings), then ``exposure`` and the binarised ``outcome``. The encoder
is fitted on the training log and applied unchanged to any other pairs (ranking candidates).

``affinity`` must be a pre-treatment variable of the pair it describes, and a taste built
from outcomes must not give a pair's own outcome away. The ``user_embeddings`` asset averages
the items a user engaged with, the pair's own item included when its outcome was positive,
and that outcome is caused by the pair's exposure: an affinity built on it would be a
descendant of exposure. Leaving only the pair's own row out is not enough either: every
negative row of a user then shares one profile and every positive row has a profile of its
own, so a flexible model that recognises the user reads the outcome off the profile (a
boosted outcome model's held-out log loss fell from 0.48 to 0.30 on such features). So the
taste is *cross-fitted*: each user's logged items are split into two fixed halves, and a
pair's profile is the mean embedding of the positive items in the *other* half. Other
pairs' outcomes are not caused by this pair's exposure (no interference between pairs is
assumed, as everywhere in the pipeline), and no pair's profile depends on its own outcome, so
the affinity is pre-treatment; a pair whose other half holds no positive gets the state
``none``. Pairs outside the training log (ranking candidates, the test slice) use both halves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl
from scipy.sparse import csr_matrix

from causalrec_toolkit.tables import attribute_columns

__all__ = [
    "AFFINITY",
    "Affinity",
    "ColumnCoding",
    "ITEM_CELL",
    "MISSING",
    "NO_PROFILE",
    "OUTCOME",
    "POPULARITY",
    "TOPIC",
    "TREATMENT",
    "VariableEncoder",
    "attribute_names",
    "binarise_threshold",
    "log_halves",
    "unit_rows",
]

TREATMENT = "exposure"
OUTCOME = "outcome"
TOPIC = "item_topic"
ITEM_CELL = "item_cell"  # the item's fine cluster (``topics.py``): no variable of the graph
POPULARITY = "item_popularity"
AFFINITY = "affinity"
MISSING = "missing"
NO_PROFILE = "none"


def attribute_names(users: pl.DataFrame, items: pl.DataFrame) -> list[tuple[str, str, str]]:
    """``(table, column, variable name)`` of every attribute: a column that both tables have
    is named ``user_<col>`` / ``item_<col>``, so the two never collide."""
    user_attrs, item_attrs = attribute_columns(users), attribute_columns(items)
    clash = set(user_attrs) & set(item_attrs)
    out = []
    for table, attrs in (("users", user_attrs), ("items", item_attrs)):
        prefix = "user_" if table == "users" else "item_"
        out += [(table, col, prefix + col if col in clash else col) for col in attrs]
    return out


def binarise_threshold(outcome: pl.Series) -> float:
    """Where a numeric outcome counts as positive: 0/1 data as is, ratings on a 1–5 scale at
    4 and above (the usual relevance cut), anything else above its median."""
    values = outcome.drop_nulls().cast(pl.Float64)
    if values.is_empty():
        return 0.5
    unique = set(values.unique().to_list())
    if unique <= {0.0, 1.0}:
        return 0.5
    if values.min() >= 0 and values.max() <= 5:
        return 4.0
    return float(values.median()) + 1e-9


@dataclass
class ColumnCoding:
    """How one attribute column becomes a discrete variable."""

    source: str  # column in the users or items table
    table: str  # "users" or "items"
    name: str  # variable name in the causal model
    edges: list[float] | None = None  # quantile bin edges for numerics

    def encode(self, values: pl.Series) -> pl.Series:
        if self.edges is not None:
            v = values.cast(pl.Float64).fill_null(np.nan).to_numpy()
            codes = pl.Series(np.searchsorted(np.asarray(self.edges), v, side="right"))
            labels = pl.select(
                pl.when(pl.Series(np.isnan(v))).then(pl.lit(MISSING)).otherwise(pl.lit("q") + codes.cast(pl.String))
            )
            return labels.to_series().alias(self.name)
        return values.cast(pl.String).fill_null(MISSING).alias(self.name)


class VariableEncoder:
    """Fit on the training log, then ``transform`` any (user_id, item_id) pairs.

    Like a scikit-learn transformer, the constructor only keeps the parameters; ``fit`` learns
    the codings, bin edges and the outcome threshold (attributes ending in ``_``; the
    unsuffixed names read them, as before)."""

    def __init__(self, n_bins: int = 4, max_levels: int = 12) -> None:
        self.n_bins = n_bins
        self.max_levels = max_levels

    def _check_fitted(self) -> None:
        if not hasattr(self, "users_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this VariableEncoder is not fitted yet: call fit first")

    @property
    def outcome_threshold(self) -> float:
        return self.outcome_threshold_

    @property
    def skipped(self) -> dict[str, str]:
        return self.skipped_

    @property
    def codings(self) -> list[ColumnCoding]:
        return self.codings_

    @property
    def affinity(self) -> Affinity | None:
        return self.affinity_

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        users: pl.DataFrame,
        items: pl.DataFrame,
        train: pl.DataFrame,
        item_topics: pl.DataFrame | None = None,
        *,
        item_embeddings: pl.DataFrame | None = None,
    ) -> VariableEncoder:
        """Learn bins and kept columns from the training log. With ``item_embeddings``
        (``item_id, embedding``) the ``affinity`` variable is made too: every caller that must
        agree on the variables (structure, effects checks, ranking) passes the same inputs."""
        self.codings_, self.skipped_ = [], {}
        for table, col, name in attribute_names(users, items):
            frame = users if table == "users" else items
            coding = self._code_column(frame[col], col, table, name)
            if coding is not None:
                self.codings_.append(coding)
        counts = train.group_by("item_id").len()
        pop = items.select("item_id").join(counts, on="item_id", how="left").fill_null(0)["len"]
        self.popularity_edges_ = _quantile_edges(pop.cast(pl.Float64), self.n_bins)
        self.outcome_threshold_ = binarise_threshold(train[OUTCOME])
        self.users_ = users
        self.items_ = items.join(counts.rename({"len": "_count"}), on="item_id", how="left").with_columns(
            pl.col("_count").fill_null(0)
        )
        if item_topics is not None:
            self.items_ = self.items_.join(item_topics.select("item_id", TOPIC), on="item_id", how="left")
        self.affinity_ = None
        if item_embeddings is not None and item_embeddings.is_empty():
            self.skipped_[AFFINITY] = "no item embeddings"
        elif item_embeddings is not None:
            affinity = Affinity.fit(train, item_embeddings, self.outcome_threshold_, self.n_bins)
            if affinity.edges:
                self.affinity_ = affinity
            else:
                self.skipped_[AFFINITY] = affinity.why_not or "no spread to bin"
        return self

    def _code_column(self, values: pl.Series, col: str, table: str, name: str) -> ColumnCoding | None:
        n_levels = values.n_unique()
        if n_levels <= 1:
            self.skipped_[name] = "a single value"
            return None
        if values.dtype.is_numeric() and n_levels > self.max_levels:
            edges = _quantile_edges(values.cast(pl.Float64), self.n_bins)
            if not edges:
                self.skipped_[name] = "no spread to bin"
                return None
            return ColumnCoding(col, table, name, edges)
        if n_levels > self.max_levels:
            self.skipped_[name] = f"{n_levels} levels (more than {self.max_levels})"
            return None
        return ColumnCoding(col, table, name)

    # ------------------------------------------------------------ transform
    @property
    def variable_names(self) -> list[str]:
        names = [c.name for c in self.codings_ if c.table == "users"]
        names += [c.name for c in self.codings_ if c.table == "items"]
        self._check_fitted()
        if TOPIC in self.items_.columns:
            names.append(TOPIC)
        if self.popularity_edges_:
            names.append(POPULARITY)
        if self.affinity_ is not None:
            names.append(AFFINITY)
        return names

    def pair_features(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """Discrete pre-treatment variables of each (user_id, item_id) pair, in pair order."""
        self._check_fitted()
        out: dict[str, Any] = {}
        joined = pairs.select("user_id", "item_id").join(self.users_, on="user_id", how="left", maintain_order="left")
        joined = joined.join(self.items_, on="item_id", how="left", suffix="__item", maintain_order="left")
        for c in self.codings_:
            src = c.source if c.table == "users" or c.source not in self.users_.columns else c.source + "__item"
            out[c.name] = c.encode(joined[src])
        if TOPIC in joined.columns:
            out[TOPIC] = joined[TOPIC].cast(pl.String).fill_null(MISSING)
        if self.popularity_edges_:
            out[POPULARITY] = ColumnCoding("_count", "items", POPULARITY, self.popularity_edges_).encode(
                joined["_count"]
            )
        if self.affinity_ is not None:
            out[AFFINITY] = self.affinity_.encode(pairs)
        return pl.DataFrame(out)

    def transform(self, interactions: pl.DataFrame) -> pl.DataFrame:
        """The full variable table: pair features (categorical: a code per row, not a string:
        a large log's table is a quarter of the size), then exposure and binarised outcome."""
        features = self.pair_features(interactions).with_columns(pl.all().cast(pl.Categorical))
        return features.with_columns(
            interactions[TREATMENT].cast(pl.Int64).cast(pl.String).alias(TREATMENT),
            (interactions[OUTCOME].cast(pl.Float64) >= self.outcome_threshold_)
            .cast(pl.Int64)
            .cast(pl.String)
            .alias(OUTCOME),
        )


@dataclass
class Affinity:
    """Cosine between a user's taste and an item, the taste cross-fitted (see the module
    docstring): every logged training pair belongs to one half of its user's log, and its
    profile is the mean unit vector of the positive items of the *other* half.

    ``sums[u, h]`` holds the sum of the unit item vectors of user ``u``'s positive training
    rows in half ``h``, ``counts[u, h]`` how many; ``halves`` gives each logged pair's half.
    Pairs that are not in the training log (ranking candidates, the test slice) use both."""

    users: pl.DataFrame  # user_id, _u (row of sums)
    items: pl.DataFrame  # item_id, _i (row of vectors)
    vectors: np.ndarray  # unit item vectors
    sums: np.ndarray  # (users, 2, dim)
    counts: np.ndarray  # (users, 2)
    halves: pl.DataFrame  # user_id, item_id, _h
    edges: list[float] = field(default_factory=list)
    why_not: str = ""
    # the cosines of the frame it was fitted on, for the next ``raw`` of that same frame (not pickled)
    _fitted: tuple[pl.DataFrame, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fitted": None}

    @classmethod
    def fit(cls, train: pl.DataFrame, item_embeddings: pl.DataFrame, threshold: float, n_bins: int) -> Affinity:
        ids = item_embeddings["item_id"]
        vectors = unit_rows(item_embeddings).astype(np.float32)  # float32, as the encoder made them: half the traffic
        items = pl.DataFrame({"item_id": ids, "_i": np.arange(len(ids), dtype=np.int64)})
        users = train.select("user_id").unique(maintain_order=True).with_row_index("_u").select("user_id", "_u")
        users = users.with_columns(pl.col("_u").cast(pl.Int64))
        halves = log_halves(train)
        rows = (
            train.filter(pl.col(OUTCOME).cast(pl.Float64) >= threshold)
            .select("user_id", "item_id")
            .join(items, on="item_id", how="inner")
            .join(users, on="user_id", how="inner")
            .join(halves, on=["user_id", "item_id"], how="inner")
        )
        profile = rows["_u"].to_numpy() * 2 + rows["_h"].to_numpy()  # (user, half) -> one row of ``sums``
        # one sparse product instead of a (positive rows x dim) gather: memory in users x dim only
        members = csr_matrix(
            (np.ones(len(profile)), (profile, rows["_i"].to_numpy())), shape=(2 * users.height, len(vectors))
        )
        sums = np.asarray(members @ vectors, dtype=np.float32).reshape(users.height, 2, vectors.shape[1])
        counts = np.bincount(profile, minlength=2 * users.height).astype(np.float64).reshape(users.height, 2)
        model = cls(users, items, vectors, sums, counts, halves)
        raw = model.raw(train)
        model._fitted = (train, raw)
        finite = raw[np.isfinite(raw)]
        if finite.size == 0:
            model.why_not = "no user has a positive outcome in the other half of their log"
        else:
            model.edges = _quantile_edges(pl.Series(finite), n_bins)
        return model

    def for_users(self, user_ids: pl.DataFrame) -> Affinity:
        """The same affinity for the pairs of ``user_ids``' users only (what a shard is sent):
        their rows of the sums, their logged halves; other users read as users without a log."""
        mine = self.users.join(user_ids.select("user_id"), on="user_id", how="semi")
        rows = mine["_u"].to_numpy()
        users = mine.with_columns(pl.Series("_u", np.arange(len(rows), dtype=np.int64)))
        halves = self.halves.join(user_ids.select("user_id"), on="user_id", how="semi")
        return replace(self, users=users, sums=self.sums[rows], counts=self.counts[rows], halves=halves, _fitted=None)

    def _index(self, pairs: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pair: the user's row (-1: no training rows), the item's row (-1: no vector) and
        the pair's half of the log (-1: not a logged training pair)."""
        frame = (
            pairs.select("user_id", "item_id")
            .join(self.users, on="user_id", how="left", maintain_order="left")
            .join(self.items, on="item_id", how="left", maintain_order="left")
            .join(self.halves, on=["user_id", "item_id"], how="left", maintain_order="left")
        )
        return tuple(frame[c].fill_null(-1).to_numpy() for c in ("_u", "_i", "_h"))  # type: ignore[return-value]

    def _profiles(self, u: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sum of vectors and count of each row's profile: the other half, or both halves."""
        logged = h >= 0
        if logged.all():  # what ``_chunks`` passes: one gather, no scatter
            return self.sums[u, 1 - h], self.counts[u, 1 - h]
        sums = np.empty((len(u), self.sums.shape[2]))
        counts = np.empty(len(u))
        sums[logged] = self.sums[u[logged], 1 - h[logged]]
        counts[logged] = self.counts[u[logged], 1 - h[logged]]
        sums[~logged] = self.sums[u[~logged]].sum(axis=1)
        counts[~logged] = self.counts[u[~logged]].sum(axis=1)
        return sums, counts

    def _chunks(self, index: tuple[np.ndarray, np.ndarray, np.ndarray], size: int = 20_000):
        """``(rows, sums, counts, item rows)`` for logged pairs with a user, in bounded chunks
        (pairs outside the log share their user's whole profile: see ``_whole``)."""
        u, i, h = index
        known = np.flatnonzero((u >= 0) & (h >= 0))
        for start in range(0, known.size, size):
            part = known[start : start + size]
            sums, counts = self._profiles(u[part], h[part])
            yield part, sums, counts, i[part]

    @staticmethod
    def _whole(index: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, user rows, item rows)`` of the pairs outside the log that have a user: their
        profile is the user's whole one, computed once per user."""
        u, i, h = index
        rows = np.flatnonzero((u >= 0) & (h < 0))
        return rows, u[rows], i[rows]

    def taste(self, pairs: pl.DataFrame, project: Callable[[np.ndarray], np.ndarray], dim: int) -> np.ndarray:
        """Each pair's taste (the mean unit vector of its profile) mapped by ``project`` to
        ``dim`` columns; NaN rows where the profile is empty."""
        out = np.full((pairs.height, dim), np.nan)
        index = self._index(pairs)
        for part, sums, counts, _ in self._chunks(index):
            has = counts > 0
            if has.any():
                out[part[has]] = project(sums[has] / counts[has, None])
        rows, users, _ = self._whole(index)
        totals, counts = self.sums.sum(axis=1), self.counts.sum(axis=1)
        per_user = np.full((len(counts), dim), np.nan)
        has = counts > 0
        if has.any():
            per_user[has] = project(totals[has] / counts[has, None])
        out[rows] = per_user[users]
        return out

    def raw(self, pairs: pl.DataFrame) -> np.ndarray:
        """Cosine per pair; NaN where the profile is empty (``none``) or there is no item vector."""
        if self._fitted is not None and self._fitted[0] is pairs:
            return self._fitted[1].copy()
        out = np.full(pairs.height, np.nan)
        index = self._index(pairs)
        for part, sums, counts, items in self._chunks(index):
            ok = (counts > 0) & (items >= 0)
            s, e = sums[ok], self.vectors[items[ok]]
            out[part[ok]] = np.einsum("ij,ij->i", s, e) / np.maximum(np.linalg.norm(s, axis=1), 1e-12)
        rows, users, items = self._whole(index)
        totals = self.sums.sum(axis=1)
        norms = np.linalg.norm(totals, axis=1)
        unit = totals / np.maximum(norms, 1e-12)[:, None]
        ok = (self.counts.sum(axis=1)[users] > 0) & (items >= 0)
        rows, users, items = rows[ok], users[ok], items[ok]
        for start in range(0, rows.size, 100_000):  # bounded memory on large candidate sets
            part = slice(start, start + 100_000)
            out[rows[part]] = np.einsum("ij,ij->i", unit[users[part]], self.vectors[items[part]])
        return out

    def encode(self, pairs: pl.DataFrame) -> pl.Series:
        raw = self.raw(pairs)
        codes = pl.Series(AFFINITY, np.searchsorted(np.asarray(self.edges), raw, side="right"))
        labels = pl.select(
            pl.when(pl.Series(np.isnan(raw))).then(pl.lit(NO_PROFILE)).otherwise(pl.lit("q") + codes.cast(pl.String))
        )
        return labels.to_series().alias(AFFINITY)


def unit_rows(item_embeddings: pl.DataFrame) -> np.ndarray:
    """The ``embedding`` column as a float64 matrix of unit rows (zero rows stay zero)."""
    vectors = np.asarray(item_embeddings["embedding"].to_list(), dtype=np.float64).reshape(item_embeddings.height, -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def log_halves(train: pl.DataFrame) -> pl.DataFrame:
    """``user_id, item_id, _h``: each logged pair's half (0 or 1) of its user's log, alternating
    along the user's items: balanced, and the same for every run on the same data."""
    return (
        train.select("user_id", "item_id")
        .unique(maintain_order=True)
        .with_columns((pl.col("item_id").rank("ordinal").over("user_id") % 2).cast(pl.Int64).alias("_h"))
    )


def _quantile_edges(values: pl.Series, n_bins: int) -> list[float]:
    v = values.drop_nulls().to_numpy().astype(float)
    if v.size == 0:
        return []
    qs = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1])
    return sorted(set(float(q) for q in qs))
