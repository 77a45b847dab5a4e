"""The causal model's variables: one discrete value per (user, item) pair and variable.

User and item attributes enter as they are (numerics quantile-binned, columns with a single
value or too many levels left out and reported), plus derived variables named by what they
are: ``item_topic`` (clusters of the item embeddings), ``item_popularity`` (binned count of
the item's training rows), ``affinity`` (binned cosine between the user's taste and the item,
both from the text embeddings), then ``exposure`` and the binarised ``outcome``. The encoder
is fitted on the training log and applied unchanged to any other pairs (ranking candidates).

``affinity`` must be a pre-treatment variable of the pair it describes. The ``user_embeddings``
asset averages the items a user engaged with, the pair's own item included when its outcome
was positive, and that outcome is caused by the pair's exposure: an affinity built on it
would be a descendant of exposure (adjusting for it biases the effect). So the user's taste
is rebuilt here *leave-one-out*: the mean embedding of the items with a positive training
outcome other than the pair's own item. Other pairs' outcomes are not caused by this pair's
exposure (no interference between pairs is assumed, as everywhere in the pipeline), so the
leave-one-out affinity is pre-treatment; a user with no other positive gets the state
``none``. Pairs outside the training log (ranking candidates, the test slice) have no own
row to leave out and use the whole profile, which is the same definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from causalrec_assets.contracts import attribute_columns

TREATMENT = "exposure"
OUTCOME = "outcome"
TOPIC = "item_topic"
POPULARITY = "item_popularity"
AFFINITY = "affinity"
MISSING = "missing"
NO_PROFILE = "none"


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
            v = values.cast(pl.Float64).to_numpy()
            codes = np.searchsorted(np.asarray(self.edges), v, side="right")
            labels = np.array([f"q{c}" for c in codes], dtype=object)
            labels[np.isnan(v)] = MISSING
            return pl.Series(self.name, labels, dtype=pl.String)
        return values.cast(pl.String).fill_null(MISSING).alias(self.name)


@dataclass
class VariableEncoder:
    """Fit on the training log, then ``transform`` any (user_id, item_id) pairs.

    Parameters are set in ``__init__``; ``fit`` learns bin edges and the columns to keep.
    """

    n_bins: int = 4
    max_levels: int = 12
    codings: list[ColumnCoding] = field(default_factory=list)
    popularity_edges: list[float] = field(default_factory=list)
    outcome_threshold: float = 0.5
    skipped: dict[str, str] = field(default_factory=dict)
    affinity: Affinity | None = None
    _users: pl.DataFrame | None = None
    _items: pl.DataFrame | None = None

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
        self.codings, self.skipped = [], {}
        user_attrs, item_attrs = attribute_columns(users), attribute_columns(items)
        clash = set(user_attrs) & set(item_attrs)
        for table, frame, attrs in (("users", users, user_attrs), ("items", items, item_attrs)):
            prefix = "user_" if table == "users" else "item_"
            for col in attrs:
                name = prefix + col if col in clash else col
                coding = self._code_column(frame[col], col, table, name)
                if coding is not None:
                    self.codings.append(coding)
        counts = train.group_by("item_id").len()
        pop = items.select("item_id").join(counts, on="item_id", how="left").fill_null(0)["len"]
        self.popularity_edges = _quantile_edges(pop.cast(pl.Float64), self.n_bins)
        self.outcome_threshold = binarise_threshold(train[OUTCOME])
        self._users = users
        self._items = items.join(counts.rename({"len": "_count"}), on="item_id", how="left").with_columns(
            pl.col("_count").fill_null(0)
        )
        if item_topics is not None:
            self._items = self._items.join(item_topics.select("item_id", TOPIC), on="item_id", how="left")
        self.affinity = None
        if item_embeddings is not None and item_embeddings.is_empty():
            self.skipped[AFFINITY] = "no item embeddings"
        elif item_embeddings is not None:
            affinity = Affinity.fit(train, item_embeddings, self.outcome_threshold, self.n_bins)
            if affinity.edges:
                self.affinity = affinity
            else:
                self.skipped[AFFINITY] = affinity.why_not or "no spread to bin"
        return self

    def _code_column(self, values: pl.Series, col: str, table: str, name: str) -> ColumnCoding | None:
        n_levels = values.n_unique()
        if n_levels <= 1:
            self.skipped[name] = "a single value"
            return None
        if values.dtype.is_numeric() and n_levels > self.max_levels:
            edges = _quantile_edges(values.cast(pl.Float64), self.n_bins)
            if not edges:
                self.skipped[name] = "no spread to bin"
                return None
            return ColumnCoding(col, table, name, edges)
        if n_levels > self.max_levels:
            self.skipped[name] = f"{n_levels} levels (more than {self.max_levels})"
            return None
        return ColumnCoding(col, table, name)

    # ------------------------------------------------------------ transform
    @property
    def variable_names(self) -> list[str]:
        names = [c.name for c in self.codings if c.table == "users"]
        names += [c.name for c in self.codings if c.table == "items"]
        if self._items is not None and TOPIC in self._items.columns:
            names.append(TOPIC)
        if self.popularity_edges:
            names.append(POPULARITY)
        if self.affinity is not None:
            names.append(AFFINITY)
        return names

    def pair_features(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """Discrete pre-treatment variables of each (user_id, item_id) pair, in pair order."""
        assert self._users is not None and self._items is not None, "fit the encoder first"
        out: dict[str, Any] = {}
        joined = pairs.select("user_id", "item_id").join(self._users, on="user_id", how="left", maintain_order="left")
        joined = joined.join(self._items, on="item_id", how="left", suffix="__item", maintain_order="left")
        for c in self.codings:
            src = c.source if c.table == "users" or c.source not in self._users.columns else c.source + "__item"
            out[c.name] = c.encode(joined[src])
        if TOPIC in joined.columns:
            out[TOPIC] = joined[TOPIC].cast(pl.String).fill_null(MISSING)
        if self.popularity_edges:
            out[POPULARITY] = ColumnCoding("_count", "items", POPULARITY, self.popularity_edges).encode(
                joined["_count"]
            )
        if self.affinity is not None:
            out[AFFINITY] = self.affinity.encode(pairs)
        return pl.DataFrame(out)

    def transform(self, interactions: pl.DataFrame) -> pl.DataFrame:
        """The full variable table: pair features, then exposure and binarised outcome."""
        features = self.pair_features(interactions)
        return features.with_columns(
            interactions[TREATMENT].cast(pl.Int64).cast(pl.String).alias(TREATMENT),
            (interactions[OUTCOME].cast(pl.Float64) >= self.outcome_threshold)
            .cast(pl.Int64)
            .cast(pl.String)
            .alias(OUTCOME),
        )

    def knowledge_tiers(self) -> tuple[list[list[str]], list[str]]:
        """Tiers (attributes, derived, exposure, outcome) and the exogenous attributes."""
        attrs = [c.name for c in self.codings]
        derived = [v for v in (TOPIC, POPULARITY, AFFINITY) if v in self.variable_names]
        return [attrs + derived, [TREATMENT], [OUTCOME]], attrs + derived


@dataclass
class Affinity:
    """Leave-one-out cosine between a user's taste and an item (see the module docstring).

    ``sums`` holds, per user, the sum of the unit item vectors of their positive training
    rows and ``counts`` how many; ``own`` counts each (user, item) pair's positive rows, which
    are left out of that pair's profile."""

    users: pl.DataFrame  # user_id, _u (row of sums)
    items: pl.DataFrame  # item_id, _i (row of vectors)
    vectors: np.ndarray  # unit item vectors
    sums: np.ndarray
    counts: np.ndarray
    own: pl.DataFrame  # user_id, item_id, _own
    edges: list[float] = field(default_factory=list)
    why_not: str = ""

    @classmethod
    def fit(cls, train: pl.DataFrame, item_embeddings: pl.DataFrame, threshold: float, n_bins: int) -> Affinity:
        ids = item_embeddings["item_id"]
        vectors = np.asarray(item_embeddings["embedding"].to_list(), dtype=np.float64).reshape(len(ids), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1.0, norms)
        items = pl.DataFrame({"item_id": ids, "_i": np.arange(len(ids), dtype=np.int64)})
        positive = (
            train.filter(pl.col(OUTCOME).cast(pl.Float64) >= threshold)
            .select("user_id", "item_id")
            .join(items, on="item_id", how="inner")
        )
        users = train.select("user_id").unique(maintain_order=True).with_row_index("_u").select("user_id", "_u")
        users = users.with_columns(pl.col("_u").cast(pl.Int64))
        rows = positive.join(users, on="user_id", how="inner")
        sums = np.zeros((users.height, vectors.shape[1]))
        np.add.at(sums, rows["_u"].to_numpy(), vectors[rows["_i"].to_numpy()])
        counts = np.bincount(rows["_u"].to_numpy(), minlength=users.height).astype(np.float64)
        own = positive.group_by("user_id", "item_id").len("_own")
        model = cls(users, items, vectors, sums, counts, own)
        raw = model.raw(train)
        finite = raw[np.isfinite(raw)]
        if finite.size == 0:
            model.why_not = "no user has a positive outcome on another item"
        else:
            model.edges = _quantile_edges(pl.Series(finite), n_bins)
        return model

    def raw(self, pairs: pl.DataFrame) -> np.ndarray:
        """Cosine per pair; NaN where there is no profile (``none``) or no item vector."""
        frame = (
            pairs.select("user_id", "item_id")
            .join(self.users, on="user_id", how="left", maintain_order="left")
            .join(self.items, on="item_id", how="left", maintain_order="left")
            .join(self.own, on=["user_id", "item_id"], how="left", maintain_order="left")
        )
        u = frame["_u"].fill_null(-1).to_numpy()
        i = frame["_i"].fill_null(-1).to_numpy()
        k = frame["_own"].fill_null(0).cast(pl.Float64).to_numpy()
        out = np.full(frame.height, np.nan)
        ok = (u >= 0) & (i >= 0)
        ok[ok] &= self.counts[u[ok]] - k[ok] > 0
        idx = np.flatnonzero(ok)
        for start in range(0, idx.size, 20_000):  # bounded memory on large candidate sets
            part = idx[start : start + 20_000]
            s, e, kk = self.sums[u[part]], self.vectors[i[part]], k[part]
            dot = np.einsum("ij,ij->i", s, e)
            norm2 = np.einsum("ij,ij->i", s, s) - 2 * kk * dot + kk * kk  # |s - k e|², e of unit norm
            out[part] = (dot - kk) / np.sqrt(np.maximum(norm2, 1e-12))
        return out

    def encode(self, pairs: pl.DataFrame) -> pl.Series:
        raw = self.raw(pairs)
        codes = np.searchsorted(np.asarray(self.edges), raw, side="right")
        labels = np.array([f"q{c}" for c in codes], dtype=object)
        labels[np.isnan(raw)] = NO_PROFILE
        return pl.Series(AFFINITY, labels, dtype=pl.String)


def _quantile_edges(values: pl.Series, n_bins: int) -> list[float]:
    v = values.drop_nulls().to_numpy().astype(float)
    if v.size == 0:
        return []
    qs = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1])
    return sorted(set(float(q) for q in qs))
