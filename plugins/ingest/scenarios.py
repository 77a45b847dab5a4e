"""Other simulated worlds than the default one, each with a known truth, so the causal core can
be tried (and tested) on worlds it was not built against.

Every scenario keeps the canonical tables and the default world's layout (logged pairs per
user under a confounded logging policy, a randomized ``test`` slice of other pairs) but
changes *how* exposure and outcome are confounded and how the effect varies:

- ``interaction``: confounding through the interaction of a user attribute and an item
  attribute (age group x category) with no main effects: a model of main effects sees none.
- ``numeric``: confounding through numbers (income against price, age in years); nothing
  is binned in the data.
- ``taste``: each user has a latent taste over topics that no table holds; it drives the
  policy, the baseline and the effect. Only the user's history and the items' texts reveal it.
- ``hidden``: the default kind of world plus a circumstance of each (user, item) meeting that
  no table holds and that drives both exposure and outcome: no estimator on the observed data
  can be right (a *user* trait, ``attribute_world(hidden=...)``, the user's history partly
  reveals).
- ``null``: confounded, but exposure has no effect at all.
- ``negative``: exposure lowers the outcome on average (it crowds out what users would do).
- ``strong``: confounding twice as strong as the default (thinner overlap).
- ``continuous``: a continuous outcome (spend), confounded by attributes and text.

The functions here only describe each world's mechanisms (propensity, baseline, effect);
``draw_world`` samples the log from them, the same way for all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
from scipy.special import ndtri

from causalrec_assets.plugin_api import Dataset, GroundTruth
from causalrec_toolkit.tables import mix

Scenario = Literal["interaction", "numeric", "taste", "hidden", "null", "negative", "strong", "continuous"]
SCENARIOS: tuple[str, ...] = Scenario.__args__  # type: ignore[attr-defined]

AGE_GROUPS = ["18-24", "25-34", "35-49", "50+"]
REGIONS = ["north", "south", "east", "west"]
PRICE_TIERS = ["budget", "standard", "premium"]
CATEGORY_WORDS = {
    "books": ["novel", "paperback", "story collection", "biography", "poetry book"],
    "tools": ["cordless drill", "screwdriver set", "tape measure", "socket wrench", "work bench"],
    "toys": ["building blocks", "board game", "puzzle", "plush toy", "model train"],
    "audio": ["headphones", "bluetooth speaker", "turntable", "soundbar", "earbuds"],
    "outdoor": ["camping tent", "sleeping bag", "hiking boots", "trekking poles", "head lamp"],
    "beauty": ["lipstick", "face mask", "hair serum", "nail polish", "perfume"],
    "pets": ["dog leash", "cat tree", "pet bed", "bird feeder", "aquarium filter"],
    "coffee": ["espresso beans", "french press", "milk frother", "coffee grinder", "pour over kettle"],
}
ADJECTIVES = ["new", "popular", "classic", "compact", "premium", "handmade", "durable", "everyday"]


def category_of(text: str) -> str:
    """The category an item's text names (the scenarios write texts from these words)."""
    noun = text.split(" ", 1)[1] if " " in text else text
    return next((c for c, nouns in CATEGORY_WORDS.items() if noun in nouns), "unknown")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Mechanisms:
    """One world: its observed tables and, for any (user index, item index) pairs, the
    logging policy's propensity, the outcome without exposure (mu0) and the effect (tau)."""

    users: pl.DataFrame
    items: pl.DataFrame
    propensity: Callable[[np.ndarray, np.ndarray], np.ndarray]
    mu0: Callable[[np.ndarray, np.ndarray], np.ndarray]
    tau: Callable[[np.ndarray, np.ndarray], np.ndarray]
    edges: list[tuple[str, str]]
    confounders: list[str]
    binary: bool = True
    noise: float = 1.0  # standard deviation of a continuous outcome around its mean
    hidden: list[str] = field(default_factory=list)


# Up to this many users x items a world is drawn as it always was (dense per-pair tables, the
# truth's uplift on every pair); past it, without any users x items matrix, so a 100,000 x
# 10,000 world takes memory in its logged pairs only.
DENSE_PAIRS = 20_000_000
TRUTH_PAIRS = 2_000_000  # past this, the truth's uplift covers a random sample of users (all their items)


def distinct_items(rng: np.random.Generator, n_users: int, n_items: int, per_user: int) -> np.ndarray:
    """``per_user`` distinct item indices per user, in random order, drawing a few more than
    needed with replacement and keeping each row's first occurrences (memory: users x draws)."""
    if per_user * 2 > n_items:  # duplicates would be common: one permutation per user
        return np.stack([rng.permutation(n_items)[:per_user] for _ in range(n_users)])
    out = np.empty((n_users, per_user), dtype=np.int64)
    todo, draws_per_row = np.arange(n_users), per_user + max(8, per_user // 2)
    while todo.size:
        draws = rng.integers(0, n_items, (todo.size, draws_per_row))
        order = np.argsort(draws, axis=1, kind="stable")  # equal items: the earliest draw first
        ranked = np.take_along_axis(draws, order, axis=1)
        first = np.ones(ranked.shape, dtype=bool)
        first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
        keep = np.empty_like(first)
        np.put_along_axis(keep, order, first, axis=1)
        enough = keep.sum(axis=1) >= per_user
        kept = np.argsort(~keep[enough], axis=1, kind="stable")[:, :per_user]
        out[todo[enough]] = np.take_along_axis(draws[enough], kept, axis=1)
        todo = todo[~enough]
    return out


def pair_normal(key: int, u: np.ndarray, i: np.ndarray, n_items: int) -> np.ndarray:
    """A standard normal per (user, item) pair, the same for the same pair: a hash of the pair
    (splitmix64) instead of a users x items table."""
    x = (u.astype(np.uint64) * np.uint64(n_items) + i.astype(np.uint64)) ^ np.uint64(key)
    x = mix(x + np.uint64(0x9E3779B97F4A7C15))
    uniform = ((x >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
    return ndtri(uniform)


def truth_users(rng: np.random.Generator, n_users: int, n_items: int) -> np.ndarray:
    """The users whose every item the truth's uplift covers: all of them in a small world, a
    random sample (``TRUTH_PAIRS`` pairs) in a large one."""
    if n_users * n_items <= TRUTH_PAIRS:
        return np.arange(n_users)
    return np.sort(rng.choice(n_users, max(1, TRUTH_PAIRS // n_items), replace=False))


def truth_pairs(users: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Every item of each of ``users``, as (user index, item index) arrays."""
    return np.repeat(users, n_items), np.tile(np.arange(n_items), users.size)


def _ids(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{k:05d}" for k in range(n)])


def _category_items(rng: np.random.Generator, n_items: int, n_categories: int) -> tuple[np.ndarray, list[str]]:
    names = list(CATEGORY_WORDS)[:n_categories]
    category = np.arange(n_items) % n_categories
    rng.shuffle(category)
    texts = [f"{rng.choice(ADJECTIVES).capitalize()} {rng.choice(CATEGORY_WORDS[names[c]])}" for c in category]
    return category, texts


def _pure_interaction(rng: np.random.Generator, rows: int, cols: int, scale: float) -> np.ndarray:
    """A rows x cols table of logits with zero row and column means: all interaction."""
    table = rng.normal(0, 1, (rows, cols))
    table -= table.mean(axis=0, keepdims=True)
    table -= table.mean(axis=1, keepdims=True)
    return scale * table / (np.abs(table).max() + 1e-9)


def interaction_world(rng: np.random.Generator, n_users: int, n_items: int, strength: float = 1.0) -> Mechanisms:
    age = rng.choice(len(AGE_GROUPS), n_users)
    region = rng.choice(len(REGIONS), n_users)
    n_cat = 6
    category, texts = _category_items(rng, n_items, n_cat)
    price = rng.choice(len(PRICE_TIERS), n_items, p=[0.4, 0.4, 0.2])
    policy = _pure_interaction(rng, len(AGE_GROUPS), n_cat, 2.0 * strength)
    base = 0.8 * policy / max(strength, 1e-9) + _pure_interaction(rng, len(AGE_GROUPS), n_cat, 0.4)
    lift = 0.10 + _pure_interaction(rng, len(AGE_GROUPS), n_cat, 0.08)
    users = pl.DataFrame(
        {"user_id": _ids("u", n_users), "age_group": np.array(AGE_GROUPS)[age], "region": np.array(REGIONS)[region]}
    )
    items = pl.DataFrame(
        {
            "item_id": _ids("i", n_items),
            "text": texts,
            "category": np.array(list(CATEGORY_WORDS))[category],
            "price_tier": np.array(PRICE_TIERS)[price],
        }
    )
    price_effect = np.array([0.3, 0.0, -0.3])
    return Mechanisms(
        users,
        items,
        propensity=lambda u, i: sigmoid(-0.3 + policy[age[u], category[i]] + 0.5 * price_effect[price[i]]),
        mu0=lambda u, i: sigmoid(-1.2 + base[age[u], category[i]] + price_effect[price[i]]),
        tau=lambda u, i: lift[age[u], category[i]],
        edges=[
            ("age_group", "exposure"),
            ("category", "exposure"),
            ("price_tier", "exposure"),
            ("age_group", "outcome"),
            ("category", "outcome"),
            ("price_tier", "outcome"),
            ("exposure", "outcome"),
        ],
        confounders=["age_group", "category", "price_tier"],
    )


def numeric_world(rng: np.random.Generator, n_users: int, n_items: int) -> Mechanisms:
    income = np.exp(rng.normal(10.8, 0.5, n_users)).round(0)  # yearly income
    age = rng.integers(18, 76, n_users)
    price = np.exp(rng.normal(3.5, 0.8, n_items)).round(2)
    category, texts = _category_items(rng, n_items, 5)
    afford = np.log(income) - 7.3  # what a user can spend, on the scale of log price
    users = pl.DataFrame({"user_id": _ids("u", n_users), "income": income, "age": age})
    items = pl.DataFrame({"item_id": _ids("i", n_items), "text": texts, "price": price})

    def gap(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return np.tanh(afford[u] - np.log(price[i]))

    return Mechanisms(
        users,
        items,
        propensity=lambda u, i: sigmoid(-0.2 + 2.0 * gap(u, i) + 0.03 * (age[u] - 45)),
        mu0=lambda u, i: sigmoid(-1.0 + 1.4 * gap(u, i) ** 2 * np.sign(gap(u, i)) + 0.02 * (age[u] - 45)),
        tau=lambda u, i: 0.09 + 0.06 * gap(u, i) - 0.002 * (age[u] - 45),
        edges=[
            ("income", "exposure"),
            ("price", "exposure"),
            ("age", "exposure"),
            ("income", "outcome"),
            ("price", "outcome"),
            ("age", "outcome"),
            ("exposure", "outcome"),
        ],
        confounders=["income", "price", "age"],
    )


def taste_world(rng: np.random.Generator, n_users: int, n_items: int, binary: bool = True) -> Mechanisms:
    n_topics = 6
    topic, texts = _category_items(rng, n_items, n_topics)
    taste = rng.dirichlet(np.full(n_topics, 0.4), n_users)  # latent: in no table
    region = rng.choice(len(REGIONS), n_users)
    quality = rng.normal(0, 0.3, n_items)
    users = pl.DataFrame({"user_id": _ids("u", n_users), "region": np.array(REGIONS)[region]})
    items = pl.DataFrame({"item_id": _ids("i", n_items), "text": texts})

    def match(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return n_topics * taste[u, topic[i]] - 1.0  # 0 on average, up to n_topics - 1

    def mu0(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        m = match(u, i)
        return sigmoid(-1.6 + 0.5 * m + quality[i]) if binary else 3.0 + 1.0 * m + quality[i]

    def tau(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        # Persuadable where the taste is moderate; what users love anyway gains less.
        m = match(u, i)
        effect = 0.28 * np.exp(-0.5 * ((m - 1.5) / 1.2) ** 2) - 0.03
        return effect if binary else 4.0 * effect

    return Mechanisms(
        users,
        items,
        propensity=lambda u, i: sigmoid(-0.8 + 0.8 * match(u, i)),
        mu0=mu0,
        tau=tau,
        edges=[("taste", "exposure"), ("item_topic", "exposure"), ("taste", "outcome"), ("item_topic", "outcome")]
        + [("exposure", "outcome")],
        confounders=["taste", "item_topic"],
        binary=binary,
        noise=1.0,
    )


def attribute_world(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    *,
    confounding: float = 1.0,
    effect: float = 1.0,
    shift: float = 0.0,
    hidden: float = 0.0,
    context: float = 0.0,
    binary: bool = True,
) -> Mechanisms:
    """Additive confounding by attributes and the item's text (category), a segment-level
    effect scaled by ``effect`` and moved by ``shift``. Two confounders in no table:
    ``hidden`` scales a user trait (the user's history partly reveals it), ``context`` a
    circumstance of each (user, item) meeting (nothing reveals it)."""
    age = rng.choice(len(AGE_GROUPS), n_users)
    region = rng.choice(len(REGIONS), n_users)
    trait = rng.normal(0, 1, n_users)  # in no table
    dense = context and n_users * n_items <= DENSE_PAIRS
    situation = rng.normal(0, 1, (n_users, n_items)) if dense else np.zeros((1, 1))  # in no table
    situation_key = int(rng.integers(0, 2**63)) if context and not dense else 0
    n_cat = 6
    category, texts = _category_items(rng, n_items, n_cat)
    price = rng.choice(len(PRICE_TIERS), n_items, p=[0.4, 0.4, 0.2])
    b_age = rng.permutation(np.linspace(-0.6, 0.6, len(AGE_GROUPS)))
    b_cat = rng.permutation(np.linspace(-0.8, 0.8, n_cat))
    b_price = np.array([0.5, 0.0, -0.5])
    t_cat = rng.normal(0, 0.05, n_cat)
    users = pl.DataFrame(
        {"user_id": _ids("u", n_users), "age_group": np.array(AGE_GROUPS)[age], "region": np.array(REGIONS)[region]}
    )
    items = pl.DataFrame({"item_id": _ids("i", n_items), "text": texts, "price_tier": np.array(PRICE_TIERS)[price]})

    def score(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return b_age[age[u]] + b_cat[category[i]] + b_price[price[i]]

    def unobserved(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        if not context:
            return hidden * trait[u]
        pair = situation[u, i] if dense else pair_normal(situation_key, u, i, n_items)
        return hidden * trait[u] + context * pair

    def mu0(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        s = score(u, i) + 0.8 * unobserved(u, i)
        return sigmoid(-1.1 + s) if binary else 20.0 + 6.0 * s

    def tau(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        t = effect * (0.08 + t_cat[category[i]] - 0.04 * b_age[age[u]]) + shift
        return t if binary else 12.0 * t

    latent = (["trait"] if hidden else []) + (["context"] if context else [])
    confounders = ["age_group", "category", "price_tier", *latent]
    return Mechanisms(
        users,
        items,
        propensity=lambda u, i: sigmoid(-0.2 + confounding * 1.6 * score(u, i) + 1.2 * unobserved(u, i)),
        mu0=mu0,
        tau=tau,
        edges=[(c, "exposure") for c in confounders]
        + [(c, "outcome") for c in confounders]
        + [("exposure", "outcome")],
        confounders=confounders,
        binary=binary,
        noise=4.0,
        hidden=latent,
    )


def mechanisms(scenario: str, rng: np.random.Generator, n_users: int, n_items: int) -> Mechanisms:
    """The mechanisms of the named scenario (see the module docstring)."""
    builders: dict[str, Callable[[], Mechanisms]] = {
        "interaction": lambda: interaction_world(rng, n_users, n_items),
        "numeric": lambda: numeric_world(rng, n_users, n_items),
        "taste": lambda: taste_world(rng, n_users, n_items),
        "hidden": lambda: attribute_world(rng, n_users, n_items, context=1.0),
        "null": lambda: attribute_world(rng, n_users, n_items, effect=0.0),
        "negative": lambda: attribute_world(rng, n_users, n_items, effect=0.5, shift=-0.09),
        "strong": lambda: attribute_world(rng, n_users, n_items, confounding=2.0),
        "continuous": lambda: attribute_world(rng, n_users, n_items, binary=False),
    }
    if scenario not in builders:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(builders)}")
    return builders[scenario]()


def log_table(
    users: np.ndarray,
    items: np.ndarray,
    exposure: np.ndarray,
    outcome: np.ndarray,
    seconds: np.ndarray,
    test: np.ndarray,
) -> pl.DataFrame:
    """The canonical interactions table of a simulated log (timestamps: seconds into 2026)."""
    timestamps = (np.datetime64("2026-01-01T00:00:00", "s") + seconds.astype("timedelta64[s]")).astype("datetime64[us]")
    return pl.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "exposure": exposure.astype(np.int8),
            "outcome": outcome,
            "timestamp": timestamps,
            "split": np.where(test, "test", "train"),
        }
    ).sort("timestamp")


def uplift_table(users: np.ndarray, items: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> pl.DataFrame:
    """The truth's ``uplift`` frame: each pair's outcome without and with exposure."""
    return pl.DataFrame({"user_id": users, "item_id": items, "p0": p0, "p1": p1, "uplift": p1 - p0})


def logged_pairs(rng: np.random.Generator, n_users: int, n_items: int, per_user: int) -> np.ndarray:
    """``per_user`` distinct item indices for every user, without a users x items matrix."""
    if per_user > n_items:
        raise ValueError(f"{per_user} pairs per user exceed the {n_items} items")
    if n_users * n_items > DENSE_PAIRS:
        return distinct_items(rng, n_users, n_items, per_user)
    out = np.empty((n_users, per_user), dtype=np.int64)
    for u in range(n_users):
        out[u] = rng.choice(n_items, per_user, replace=False)
    return out


def draw_world(
    scenario: str,
    seed: int = 0,
    n_users: int = 1500,
    n_items: int = 240,
    pairs_per_user: int = 40,
    test_pairs_per_user: int = 10,
    days: int = 14,
) -> Dataset:
    """Sample a world of ``scenario``: the canonical tables and the truth (the ATE over the
    training pairs and the uplift of every user x item pair, or of a sample of users' pairs in a
    large world: ``truth_users``)."""
    rng = np.random.default_rng(seed)
    world = mechanisms(scenario, rng, n_users, n_items)
    return sample_world(world, rng, pairs_per_user, test_pairs_per_user, days, name=f"scenario-{scenario}")


def sample_world(
    world: Mechanisms,
    rng: np.random.Generator,
    pairs_per_user: int = 40,
    test_pairs_per_user: int = 10,
    days: int = 14,
    name: str = "scenario",
) -> Dataset:
    """The log of ``world``: logged pairs under its policy, a randomized test slice, outcomes."""
    n_users, n_items = world.users.height, world.items.height
    per_user = pairs_per_user + test_pairs_per_user
    chosen = logged_pairs(rng, n_users, n_items, per_user)
    u = np.repeat(np.arange(n_users), per_user)
    i = chosen.ravel()
    is_test = np.tile(np.arange(per_user) >= pairs_per_user, n_users)
    e = np.clip(world.propensity(u, i), 0.01, 0.99)
    exposure = np.where(is_test, rng.random(u.size) < 0.5, rng.random(u.size) < e)
    mu0 = world.mu0(u, i)
    tau = world.tau(u, i)
    if world.binary:
        mu1 = np.clip(mu0 + tau, 0.0, 1.0)
        tau = mu1 - mu0
        outcome = (rng.random(u.size) < np.where(exposure, mu1, mu0)).astype(np.int8)
    else:
        outcome = np.round(mu0 + exposure * tau + rng.normal(0, world.noise, u.size), 3)
    seconds = rng.integers(0, days * 86400, size=u.size)
    user_ids, item_ids = world.users["user_id"].to_numpy(), world.items["item_id"].to_numpy()
    interactions = log_table(user_ids[u], item_ids[i], exposure, outcome, seconds, is_test)
    all_u, all_i = truth_pairs(truth_users(rng, n_users, n_items), n_items)
    q0, q_tau = world.mu0(all_u, all_i), world.tau(all_u, all_i)
    q1 = np.clip(q0 + q_tau, 0.0, 1.0) if world.binary else q0 + q_tau
    uplift = uplift_table(user_ids[all_u], item_ids[all_i], q0, q1)
    nodes = sorted({v for edge in world.edges for v in edge})
    truth = GroundTruth(
        edges=world.edges, nodes=nodes, ate=float(np.mean(tau[~is_test])), confounders=world.confounders, uplift=uplift
    )
    return Dataset(world.users, world.items, interactions, truth=truth, name=name)
