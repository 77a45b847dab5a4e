"""The mechanisms of each scenario world (propensity, baseline, effect, observed tables).

Split out of ``scenarios`` so the world definitions read on their own: this module only
describes how each world confounds exposure and outcome (the list is in ``scenarios``'
docstring); ``scenarios.draw_world`` samples a log from any of them, the same way for all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl

from causalrec_plugins.ingest.scenario_pairs import DENSE_PAIRS, pair_normal

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
