"""Row-level features of (user, item) pairs for the effect and uplift models: the data as it is.

The Bayesian network needs discrete variables (``variables.py``); the estimators do not, and a
confounder cut into four bins keeps confounding inside each bin. So here numbers stay numbers,
categories become indicator columns, the item's text enters as the leading principal
components of its embedding (``item_text_*``), the user's taste as the same components of the
mean embedding of the items they engaged with (``user_taste_*``), and ``affinity`` as the cosine
between the two. The taste is leave-one-out, as in ``variables.py``: a pair's own positive row
is never part of its own profile, so every feature is pre-treatment.

Each causal variable of the graph maps to the feature columns that carry it
(``columns_for``), so an estimator that adjusts for the graph's backdoor set adjusts for
exactly those variables, with nothing binned away.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from causalrec_toolkit.data import PairFeatures
from causalrec_toolkit.tables import stable_hash
from causalrec_toolkit.variables import (
    AFFINITY,
    ITEM_CELL,
    OUTCOME,
    POPULARITY,
    TOPIC,
    TREATMENT,
    Affinity,
    attribute_names,
    binarise_threshold,
    log_halves,
    unit_rows,
)

__all__ = [
    "AttributeFeature",
    "HAS_TASTE",
    "HISTORY",
    "History",
    "PRIOR_ROWS",
    "PairFeaturizer",
    "TASTE",
    "TEXT",
    "as_pair_features",
    "category_codes",
    "feature_groups",
    "user_keys",
]

TEXT = "item_text"
TASTE = "user_taste"
HAS_TASTE = "user_has_taste"


@dataclass
class AttributeFeature:
    """One attribute column as features: a number (missing values: the median, and an
    indicator column when the table has any), or a categorical code (0 .. levels - 1; unknown
    and missing values: ``levels``), which the boosted models split on as a category."""

    table: str  # "users" or "items"
    source: str  # the column in that table
    name: str  # the causal variable it carries
    levels: list[str] | None = None  # None: numeric
    median: float = 0.0
    has_missing: bool = False

    @property
    def columns(self) -> list[str]:
        return [self.name] + ([f"{self.name}:missing"] if self.has_missing else [])

    def encode(self, values: pl.Series) -> list[pl.Series]:
        if self.levels is not None:
            return [category_codes(values, self.levels).alias(self.name)]
        number = values.cast(pl.Float64).fill_nan(None)
        out = [number.fill_null(self.median).alias(self.name)]
        return out + ([number.is_null().cast(pl.Float64).alias(f"{self.name}:missing")] if self.has_missing else [])


def category_codes(values: pl.Series, levels: list[str]) -> pl.Series:
    """Codes of ``values`` among ``levels``; anything else (unseen, missing) is ``len(levels)``."""
    lookup = pl.DataFrame({"_v": levels, "_code": np.arange(len(levels), dtype=np.float64)})
    frame = pl.DataFrame({"_v": values.cast(pl.String)}).join(lookup, on="_v", how="left", maintain_order="left")
    return frame["_code"].fill_null(float(len(levels)))


HISTORY = ("history_exposure", "history_positive", "history_topic_exposure", "history_topic_positive")
PRIOR_ROWS = 2.0  # pseudo-rows that shrink a user's (or a user-topic cell's) rate toward the wider one


@dataclass
class History:
    """What a user's own log says about a pair: how often the policy showed them items, and
    how often they engaged, overall and among items of the pair's topic. Cross-fitted like the
    taste (a logged pair reads the other half of its user's log; other pairs read both), and
    shrunk toward the wider rate where a user or topic has few rows. The policy's past choices
    are a readout of what it knew about the user, so these rates carry confounding that runs
    through a taste no table holds."""

    cells: pl.DataFrame  # user_id, _h, _t, n, exposed, positive (one row per user, half, topic)
    halves: pl.DataFrame  # user_id, item_id, _h
    topics: pl.DataFrame  # item_id, _t
    exposure_rate: float
    positive_rate: float

    @classmethod
    def fit(
        cls, train: pl.DataFrame, item_topics: pl.DataFrame | None, threshold: float, halves: pl.DataFrame | None = None
    ) -> History:
        """``halves``: the log's halves (``log_halves(train)``) where already made, shared."""
        halves = log_halves(train) if halves is None else halves
        if item_topics is not None and not item_topics.is_empty():
            topics = item_topics.select("item_id", pl.col(TOPIC).cast(pl.String).alias("_t"))
        else:
            topics = train.select("item_id").unique().with_columns(pl.lit("all").alias("_t"))
        rows = (
            train.select(
                "user_id",
                "item_id",
                pl.col(TREATMENT).cast(pl.Float64).alias("exposed"),
                (pl.col(OUTCOME).cast(pl.Float64) >= threshold).cast(pl.Float64).alias("positive"),
            )
            .join(halves, on=["user_id", "item_id"], how="left")
            .join(topics, on="item_id", how="left")
            .with_columns(pl.col("_t").fill_null("none"))
        )
        cells = rows.group_by("user_id", "_h", "_t").agg(
            pl.len().cast(pl.Float64).alias("n"), pl.col("exposed").sum(), pl.col("positive").sum()
        )
        return cls(cells, halves, topics, float(rows["exposed"].mean() or 0.0), float(rows["positive"].mean() or 0.0))

    def for_users(self, user_ids: pl.DataFrame) -> History:
        """The same history for the pairs of ``user_ids``' users only (what a shard is sent)."""
        ids = user_ids.select("user_id")
        return replace(
            self,
            cells=self.cells.join(ids, on="user_id", how="semi"),
            halves=self.halves.join(ids, on="user_id", how="semi"),
        )

    def transform(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """The four ``HISTORY`` columns for each pair, in pair order."""
        sums = [pl.col(c).sum() for c in ("n", "exposed", "positive")]
        # A logged pair in half h reads half 1 - h: flip the halves of the table it joins.
        other = self.cells.with_columns((1 - pl.col("_h")).alias("_h"))
        both = self.cells.group_by("user_id", "_t").agg(sums)
        user_other = other.group_by("user_id", "_h").agg(sums)
        user_both = self.cells.group_by("user_id").agg(sums)
        keys = (
            pairs.select("user_id", "item_id")
            .join(self.halves, on=["user_id", "item_id"], how="left", maintain_order="left")
            .join(self.topics, on="item_id", how="left", maintain_order="left")
            .with_columns(pl.col("_t").fill_null("none"))
        )
        frame = (
            keys.with_row_index("_row")
            .join(other, on=["user_id", "_h", "_t"], how="left", maintain_order="left")
            .join(both, on=["user_id", "_t"], how="left", maintain_order="left", suffix="_both")
            .join(
                user_other.rename({c: f"u_{c}" for c in ("n", "exposed", "positive")}),
                on=["user_id", "_h"],
                how="left",
                maintain_order="left",
            )
            .join(
                user_both.rename({c: f"u_{c}_both" for c in ("n", "exposed", "positive")}),
                on="user_id",
                how="left",
                maintain_order="left",
            )
        )

        def pick(name: str) -> pl.Expr:
            return (
                pl.when(pl.col("_h").is_not_null()).then(pl.col(name)).otherwise(pl.col(f"{name}_both")).fill_null(0.0)
            )

        frame = frame.with_columns(
            pick("n").alias("t_n"),
            pick("exposed").alias("t_exposed"),
            pick("positive").alias("t_positive"),
            pick("u_n").alias("u_n"),
            pick("u_exposed").alias("u_exposed"),
            pick("u_positive").alias("u_positive"),
        )
        user_exposure = (pl.col("u_exposed") + PRIOR_ROWS * self.exposure_rate) / (pl.col("u_n") + PRIOR_ROWS)
        user_positive = (pl.col("u_positive") + PRIOR_ROWS * self.positive_rate) / (pl.col("u_n") + PRIOR_ROWS)
        frame = frame.with_columns(user_exposure.alias(HISTORY[0]), user_positive.alias(HISTORY[1]))
        return frame.select(
            pl.col(HISTORY[0]),
            pl.col(HISTORY[1]),
            ((pl.col("t_exposed") + PRIOR_ROWS * pl.col(HISTORY[0])) / (pl.col("t_n") + PRIOR_ROWS)).alias(HISTORY[2]),
            ((pl.col("t_positive") + PRIOR_ROWS * pl.col(HISTORY[1])) / (pl.col("t_n") + PRIOR_ROWS)).alias(HISTORY[3]),
        )


@dataclass
class PairFeaturizer:
    """Fit on the training log, then ``transform`` any (user_id, item_id) pairs into a frame
    of finite floats (unknown values are imputed: a user without a profile has a zero taste,
    the average one, and ``user_has_taste`` = 0).

    Parameters only in ``__init__``; everything learned ends in ``_`` and is set by ``fit``."""

    n_components: int = 8
    max_levels: int = 50

    attributes_: list[AttributeFeature] = field(default_factory=list, init=False)
    skipped_: dict[str, str] = field(default_factory=dict, init=False)
    outcome_threshold_: float = field(default=0.5, init=False)
    pca_mean_: np.ndarray | None = field(default=None, init=False)
    pca_components_: np.ndarray | None = field(default=None, init=False)
    topics_: list[str] = field(default_factory=list, init=False)
    cells_: list[str] = field(default_factory=list, init=False)
    affinity_: Affinity | None = field(default=None, init=False)
    history_: History | None = field(default=None, init=False)
    users_: pl.DataFrame | None = field(default=None, init=False)
    items_: pl.DataFrame | None = field(default=None, init=False)

    def fit(
        self,
        users: pl.DataFrame,
        items: pl.DataFrame,
        train: pl.DataFrame,
        item_embeddings: pl.DataFrame | None = None,
        item_topics: pl.DataFrame | None = None,
        affinity: Affinity | None = None,
    ) -> PairFeaturizer:
        """Learn the features from the training log ``train``; ``affinity``, when given, is an
        ``Affinity`` already fitted on the same log and embeddings (the variable encoder's),
        reused instead of fitted again."""
        self.attributes_, self.skipped_ = [], {}
        for table, column, name in attribute_names(users, items):
            feature = self._attribute(users if table == "users" else items, table, column, name)
            if feature is not None:
                self.attributes_.append(feature)
        self.outcome_threshold_ = binarise_threshold(train[OUTCOME])
        item_frame = items.select("item_id", *self._encoded("items", items))
        counts = train.group_by("item_id").len("_count")
        item_frame = item_frame.join(counts, on="item_id", how="left", maintain_order="left").with_columns(
            pl.col("_count").fill_null(0).cast(pl.Float64).log1p().alias(POPULARITY)
        )
        self.topics_ = []
        if item_topics is not None and not item_topics.is_empty():
            self.topics_ = sorted(str(t) for t in item_topics[TOPIC].unique().to_list())
            coded = item_topics.select("item_id", category_codes(item_topics[TOPIC], self.topics_).alias(TOPIC))
            item_frame = item_frame.join(coded, on="item_id", how="left", maintain_order="left")
        self.cells_ = []
        if item_topics is not None and ITEM_CELL in item_topics.columns and not item_topics.is_empty():
            self.cells_ = sorted(str(c) for c in item_topics[ITEM_CELL].unique().to_list())
            coded = item_topics.select("item_id", category_codes(item_topics[ITEM_CELL], self.cells_).alias(ITEM_CELL))
            item_frame = item_frame.join(coded, on="item_id", how="left", maintain_order="left")
        self.affinity_, self.pca_mean_, self.pca_components_ = None, None, None
        if item_embeddings is not None and not item_embeddings.is_empty():
            vectors = unit_rows(item_embeddings)
            self._fit_components(vectors)
            text = pl.DataFrame(
                {"item_id": item_embeddings["item_id"]}
                | {f"{TEXT}_{k}": col for k, col in enumerate(self._project(vectors).T)}
            )
            item_frame = item_frame.join(text, on="item_id", how="left", maintain_order="left")
            self.affinity_ = affinity or Affinity.fit(train, item_embeddings, self.outcome_threshold_, n_bins=2)
        elif item_embeddings is not None:
            self.skipped_[AFFINITY] = "no item embeddings"
        halves = self.affinity_.halves if self.affinity_ is not None else None  # one table of halves, not two
        self.history_ = History.fit(train, item_topics, self.outcome_threshold_, halves)
        self.users_ = users.select("user_id", *self._encoded("users", users))
        self.items_ = item_frame.drop("_count")
        return self

    def for_users(self, user_ids: pl.DataFrame) -> PairFeaturizer:
        """The same featurizer for the pairs of ``user_ids``' users only: what a shard of
        users needs of the per-user state (attributes, taste sums, history), so its memory
        follows the shard, not the log. Their features are those the whole one gives."""
        assert self.users_ is not None, "fit the featurizer first"
        ids = user_ids.select("user_id")
        out = copy.copy(self)
        out.users_ = self.users_.join(ids, on="user_id", how="semi")
        out.affinity_ = self.affinity_.for_users(ids) if self.affinity_ is not None else None
        out.history_ = self.history_.for_users(ids) if self.history_ is not None else None
        return out

    def _attribute(self, frame: pl.DataFrame, table: str, column: str, name: str) -> AttributeFeature | None:
        values = frame[column]
        dtype = values.dtype
        if values.n_unique() <= 1:
            self.skipped_[name] = "a single value"
            return None
        if dtype.is_numeric() or dtype == pl.Boolean:
            number = values.cast(pl.Float64).fill_nan(None)
            median = number.median()
            return AttributeFeature(
                table,
                column,
                name,
                median=float(median) if median is not None else 0.0,
                has_missing=number.null_count() > 0,
            )
        if dtype.is_temporal():
            self.skipped_[name] = f"a {dtype} column (not an attribute the models use)"
            return None
        levels = sorted(str(v) for v in values.drop_nulls().unique().to_list())
        if len(levels) > self.max_levels:
            self.skipped_[name] = f"{len(levels)} levels (more than {self.max_levels})"
            return None
        return AttributeFeature(table, column, name, levels)

    def _encoded(self, table: str, frame: pl.DataFrame) -> list[pl.Series]:
        return [s for a in self.attributes_ if a.table == table for s in a.encode(frame[a.source])]

    def _fit_components(self, vectors: np.ndarray) -> None:
        self.pca_mean_ = vectors.mean(axis=0)
        centred = vectors - self.pca_mean_
        k = max(0, min(self.n_components, *centred.shape))
        # Eigenvectors of the d x d scatter matrix: LAPACK's divide-and-conquer SVD fails to
        # converge on some embedding tables, the symmetric eigensolver does not.
        values, vectors_ = np.linalg.eigh(centred.T @ centred)
        self.pca_components_ = vectors_[:, np.argsort(values)[::-1][:k]].T

    def _project(self, vectors: np.ndarray) -> np.ndarray:
        assert self.pca_components_ is not None and self.pca_mean_ is not None
        return (vectors - self.pca_mean_) @ self.pca_components_.T

    # ------------------------------------------------------------------ transform
    @property
    def text_columns(self) -> list[str]:
        k = 0 if self.pca_components_ is None else self.pca_components_.shape[0]
        return [f"{TEXT}_{j}" for j in range(k)]

    @property
    def taste_columns(self) -> list[str]:
        return [f"{TASTE}_{j}" for j in range(len(self.text_columns))] if self.affinity_ is not None else []

    @property
    def topic_columns(self) -> list[str]:
        return [TOPIC] if self.topics_ else []

    @property
    def cell_columns(self) -> list[str]:
        return [ITEM_CELL] if getattr(self, "cells_", None) else []  # featurizers pickled before 0.7 have none

    @property
    def feature_names(self) -> list[str]:
        names = [c for a in self.attributes_ for c in a.columns] + [POPULARITY] + self.topic_columns
        names += self.cell_columns + self.text_columns
        names += [AFFINITY, *self.taste_columns, HAS_TASTE] if self.affinity_ is not None else []
        return names + list(HISTORY)

    @property
    def groups(self) -> dict[str, list[str]]:
        """Causal variable -> the feature columns that carry it."""
        return feature_groups(self.feature_names)

    def features(self, pairs: pl.DataFrame, columns: list[str] | None = None) -> PairFeatures:
        """``transform`` as the plugin API's ``PairFeatures`` (pairs with exposure and outcome)."""
        frame = pl.concat([pairs.select("user_id"), self.transform(pairs, columns)], how="horizontal")
        return as_pair_features(frame, self.outcome_threshold_)

    def transform(self, pairs: pl.DataFrame, columns: list[str] | None = None) -> pl.DataFrame:
        """The features of each (user_id, item_id) pair, in pair order; ``exposure`` and
        ``outcome`` (on the outcome's own scale) are carried along when ``pairs`` has them.
        With ``columns``, only those features are computed (in ``feature_names`` order)."""
        assert self.users_ is not None and self.items_ is not None, "fit the featurizer first"
        keep = set(self.feature_names if columns is None else columns)
        wanted = [c for c in self.feature_names if c in keep]
        keys = pairs.select("user_id", "item_id")
        joined = keys.join(self.users_, on="user_id", how="left", maintain_order="left").join(
            self.items_, on="item_id", how="left", maintain_order="left", suffix="__item"
        )
        extra: list[pl.Series] = []
        if self.affinity_ is not None and AFFINITY in wanted:
            extra.append(pl.Series(AFFINITY, np.nan_to_num(self.affinity_.raw(keys), nan=0.0)))
        if self.affinity_ is not None and {HAS_TASTE, *self.taste_columns} & set(wanted):
            taste = self.affinity_.taste(keys, self._project, len(self.taste_columns))
            known = np.isfinite(taste).all(axis=1) if taste.shape[1] else np.zeros(len(taste), dtype=bool)
            extra += [pl.Series(name, np.nan_to_num(taste[:, j], nan=0.0)) for j, name in enumerate(self.taste_columns)]
            extra.append(pl.Series(HAS_TASTE, known.astype(np.float64)))
        if self.history_ is not None and set(HISTORY) & set(wanted):
            extra += self.history_.transform(keys).get_columns()
        codes = {a.name: float(len(a.levels)) for a in self.attributes_ if a.levels is not None}
        codes |= {TOPIC: float(len(self.topics_))} if self.topics_ else {}
        codes |= {ITEM_CELL: float(len(self.cells_))} if self.cell_columns else {}
        fills = {a.name: a.median for a in self.attributes_ if a.levels is None}  # an unknown user or item
        fills |= {f"{a.name}:missing": 1.0 for a in self.attributes_ if a.has_missing}
        frame = joined.with_columns(extra).select(
            pl.col(c).fill_null(codes[c]).cast(pl.Int32)
            if c in codes
            else pl.col(c).cast(pl.Float64).fill_null(fills.get(c, 0.0))
            for c in wanted
        )
        carried = [pairs[c].cast(pl.Float64) for c in (TREATMENT, OUTCOME) if c in pairs.columns]
        return frame.with_columns(carried) if carried else frame


def feature_groups(columns: list[str]) -> dict[str, list[str]]:
    """Causal variable -> its feature columns, read off the columns' names: an attribute and
    its ``:missing`` indicator, ``item_topic`` with the text components, ``affinity`` with
    ``user_has_taste``. The taste components carry no variable of the graph: they describe the
    user for effect models, not for adjustment."""
    out: dict[str, list[str]] = {}
    for c in columns:
        if c == TOPIC or c.startswith(f"{TEXT}_"):
            key = TOPIC
        elif c in (AFFINITY, HAS_TASTE, *HISTORY) or c.startswith(f"{TASTE}_"):
            key = AFFINITY
        elif c in (TREATMENT, OUTCOME):
            continue
        elif c.endswith(":missing"):
            key = c.removesuffix(":missing")
        else:
            key = c
        out.setdefault(key, []).append(c)
    return out


def user_keys(user_ids: pl.Series) -> pl.Series:
    """Each row's user as a stable 64-bit key (a hash of the id's text, the same in every
    process and shard): estimators fold, shard and cluster by it."""
    distinct = user_ids.unique()
    keys = pl.DataFrame({"user_id": distinct, "_key": stable_hash(distinct.cast(pl.String)).view(np.int64)})
    return user_ids.to_frame("user_id").join(keys, on="user_id", how="left", maintain_order="left")["_key"]


def as_pair_features(frame: pl.DataFrame, outcome_threshold: float) -> PairFeatures:
    """Feature columns (integer columns hold category codes) and ``exposure`` / ``outcome``
    as the plugin API's ``PairFeatures``, with each row's user as a stable key in its ``unit``
    column where the frame has ``user_id``; other columns (ids, split) are dropped."""
    keep = [c for c in frame.columns if c not in ("user_id", "item_id", "split")]
    categorical = [c for c in keep if frame.schema[c].is_integer() and c not in (TREATMENT, OUTCOME)]
    unit = PairFeatures.unit
    users = [user_keys(frame["user_id"]).alias(unit)] if "user_id" in frame.columns else []
    frame = frame.select(*keep).with_columns(users)
    return PairFeatures(
        frame=frame.with_columns(pl.col(c).cast(pl.Float64) for c in keep if c in (TREATMENT, OUTCOME)),
        groups=feature_groups(keep),
        categorical=categorical,
        from_log=[c for c in keep if c in (AFFINITY, HAS_TASTE, *HISTORY) or c.startswith(f"{TASTE}_")],
        outcome_threshold=outcome_threshold,
    )
