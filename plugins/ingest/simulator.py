"""A seeded world with a known causal truth: the pipeline's default dataset.

Users (age group, activity, region) meet items (a topic that only their text reveals, a
price tier). A logging policy shows items to users depending on age, topic, price and
activity; the outcome depends on age, topic and price as well, so the naive difference in
outcome between shown and not-shown pairs is confounded. The effect of showing an item is
heterogeneous (it varies with age, topic and price). A ``test`` slice of other pairs has its
exposure randomized, so uplift can be evaluated.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field

from causalrec_assets.plugin_api import Dataset, GroundTruth, IngestPlugin, PluginConfig, PluginContext
from causalrec_plugins.ingest.scenarios import (
    DENSE_PAIRS,
    SCENARIOS,
    distinct_items,
    draw_world,
    log_table,
    truth_pairs,
    truth_users,
    uplift_table,
)

AGE_GROUPS = ["18-24", "25-34", "35-49", "50+"]
ACTIVITY = ["low", "high"]
REGIONS = ["north", "south", "east", "west"]
PRICE_TIERS = ["budget", "standard", "premium"]

# Each topic's vocabulary: the text is what tells topics apart (the encoder must find it).
TOPICS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "running": (
        ["lightweight", "cushioned", "breathable", "trail", "marathon"],
        ["running shoes", "running shorts", "sports watch", "hydration vest", "running jacket"],
        ["for long distance runs", "for trail running", "for daily jogging", "for race day"],
    ),
    "kitchen": (
        ["stainless steel", "non-stick", "cast iron", "ceramic", "heavy duty"],
        ["frying pan", "chef knife", "saucepan", "cutting board", "stock pot"],
        ["for home cooking", "for the kitchen", "for baking and roasting", "for family meals"],
    ),
    "scifi": (
        ["award-winning", "epic", "dystopian", "classic", "bestselling"],
        ["science fiction novel", "space opera", "cyberpunk thriller", "alien invasion story"],
        ["about interstellar travel", "set on a distant planet", "about artificial intelligence"],
    ),
    "garden": (
        ["organic", "perennial", "hardy", "flowering", "drought tolerant"],
        ["tomato seeds", "garden hose", "pruning shears", "flower bulbs", "compost bin"],
        ["for the vegetable garden", "for backyard planting", "for spring gardening"],
    ),
    "gaming": (
        ["wireless", "mechanical", "rgb backlit", "ergonomic", "pro"],
        ["gaming mouse", "gaming keyboard", "game controller", "gaming headset", "video game"],
        ["for competitive gaming", "for console and pc gamers", "for esports"],
    ),
    "skincare": (
        ["hydrating", "fragrance-free", "gentle", "vitamin c", "anti-aging"],
        ["face moisturizer", "facial cleanser", "serum", "sunscreen lotion", "night cream"],
        ["for sensitive skin", "for dry skin", "for a daily skincare routine"],
    ),
    "travel": (
        ["carry-on", "waterproof", "foldable", "compact", "hard shell"],
        ["suitcase", "travel backpack", "packing cubes", "neck pillow", "passport wallet"],
        ["for weekend trips", "for air travel", "for backpacking abroad"],
    ),
    "music": (
        ["acoustic", "vintage", "studio", "portable", "electric"],
        ["guitar", "keyboard piano", "microphone", "drum pads", "ukulele"],
        ["for beginners learning music", "for home recording", "for live performance"],
    ),
}


WorldKind = Literal["default", *SCENARIOS]  # type: ignore[valid-type]


class SimulatorConfig(PluginConfig):
    scenario: WorldKind = Field(  # type: ignore[valid-type]
        default="default",
        description="Which world: 'default' (this module's), or another kind of confounding, no effect, a negative "
        "effect, a hidden confounder, a continuous outcome (see causalrec_plugins.ingest.scenarios).",
    )
    seed: int = Field(default=7, description="Seed of the world: same seed, same data.")
    n_users: int = Field(default=1500, ge=2, description="Number of users.")
    n_items: int = Field(default=240, ge=2, description="Number of items.")
    n_topics: int = Field(default=6, ge=1, le=8, description="Number of item topics (at most 8).")
    pairs_per_user: int = Field(default=40, ge=1, description="Logged (user, item) candidate pairs per user.")
    test_pairs_per_user: int = Field(default=10, ge=0, description="Pairs per user in the randomized test slice.")
    confounding: float = Field(
        default=1.0, ge=0, description="Scales how strongly the logging policy follows what drives the outcome."
    )
    effect_scale: float = Field(default=1.0, description="Scales the true effect of exposure.")
    days: int = Field(default=14, ge=1, description="Days over which interaction timestamps are spread.")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _item_texts(rng: np.random.Generator, topics: np.ndarray, names: list[str]) -> list[str]:
    texts = []
    for t in topics:
        adjectives, nouns, uses = TOPICS[names[t]]
        texts.append(f"{rng.choice(adjectives).capitalize()} {rng.choice(nouns)} {rng.choice(uses)}")
    return texts


def simulate(config: SimulatorConfig) -> Dataset:
    """Draw a world. Pure function of the config (and so of its seed)."""
    if config.scenario != "default":
        return draw_world(
            config.scenario,
            seed=config.seed,
            n_users=config.n_users,
            n_items=config.n_items,
            pairs_per_user=config.pairs_per_user,
            test_pairs_per_user=config.test_pairs_per_user,
            days=config.days,
        )
    if not 2 <= config.n_topics <= len(TOPICS):
        raise ValueError(f"n_topics must be between 2 and {len(TOPICS)}, got {config.n_topics}")
    rng = np.random.default_rng(config.seed)
    topic_names = list(TOPICS)[: config.n_topics]
    nu, ni, nt = config.n_users, config.n_items, config.n_topics

    age = rng.choice(len(AGE_GROUPS), size=nu, p=[0.25, 0.3, 0.3, 0.15])
    activity = rng.choice(len(ACTIVITY), size=nu, p=[0.5, 0.5])
    region = rng.choice(len(REGIONS), size=nu)
    topic = np.arange(ni) % nt
    rng.shuffle(topic)
    price = rng.choice(len(PRICE_TIERS), size=ni, p=[0.4, 0.4, 0.2])

    # Structural parameters, drawn from the seed so each world differs.
    c = config.confounding
    # Baseline outcome (logit) by age and topic: spread over a fixed range, so every world's
    # confounders are real ones, shuffled and jittered so every world differs.
    b_age = rng.permutation(np.linspace(-0.5, 0.5, len(AGE_GROUPS))) + rng.normal(0, 0.1, len(AGE_GROUPS))
    b_topic = rng.permutation(np.linspace(-0.7, 0.7, nt)) + rng.normal(0, 0.1, nt)
    b_price = np.array([0.5, 0.0, -0.6])
    a_age = c * 1.5 * b_age / (np.abs(b_age).max() + 1e-9)  # the policy follows the baseline …
    a_topic = c * 1.5 * b_topic / (np.abs(b_topic).max() + 1e-9)
    a_price = c * np.array([0.8, 0.0, -0.8])
    a_activity = np.array([-0.6, 0.6])  # … and activity, which does not drive the outcome
    # Uplift runs against the baseline: what users take anyway gains little from being shown
    # ("sure things"), so ranking by popularity or by predicted outcome misses the persuadables.
    z_topic = b_topic / (np.abs(b_topic).max() + 1e-9)
    z_age = b_age / (np.abs(b_age).max() + 1e-9)
    tau_topic = config.effect_scale * (0.09 - 0.07 * z_topic + rng.normal(0, 0.03, nt))
    tau_age = config.effect_scale * (-0.03 * z_age + rng.normal(0, 0.02, len(AGE_GROUPS)))
    tau_price = config.effect_scale * np.array([-0.02, 0.0, 0.03])

    def probabilities(u: np.ndarray, i: np.ndarray):
        p0 = _sigmoid(-1.4 + b_age[age[u]] + b_topic[topic[i]] + b_price[price[i]])
        tau = tau_topic[topic[i]] + tau_age[age[u]] + tau_price[price[i]]
        p1 = np.clip(p0 + tau, 0.005, 0.995)
        propensity = _sigmoid(-0.2 + a_age[age[u]] + a_topic[topic[i]] + a_price[price[i]] + a_activity[activity[u]])
        return p0, p1, np.clip(propensity, 0.03, 0.97)

    # Training log (confounded policy) and randomized test slice, on disjoint pairs per user.
    per_user = config.pairs_per_user + config.test_pairs_per_user
    if per_user > ni:
        raise ValueError(f"pairs_per_user + test_pairs_per_user ({per_user}) exceeds n_items ({ni})")
    if nu * ni <= DENSE_PAIRS:
        chosen = np.argsort(rng.random((nu, ni)), axis=1)[:, :per_user]
    else:
        chosen = distinct_items(rng, nu, ni, per_user)
    users_idx = np.repeat(np.arange(nu), per_user)
    items_idx = chosen.ravel()
    is_test = np.tile(np.arange(per_user) >= config.pairs_per_user, nu)
    p0, p1, propensity = probabilities(users_idx, items_idx)
    exposure = np.where(is_test, rng.random(is_test.size) < 0.5, rng.random(is_test.size) < propensity)
    p = np.where(exposure, p1, p0)
    outcome = (rng.random(p.size) < p).astype(np.int8)
    seconds = rng.integers(0, config.days * 86400, size=p.size)

    user_ids = np.array([f"u{k:05d}" for k in range(nu)])
    item_ids = np.array([f"i{k:05d}" for k in range(ni)])
    users = pl.DataFrame(
        {
            "user_id": user_ids,
            "age_group": np.array(AGE_GROUPS)[age],
            "activity": np.array(ACTIVITY)[activity],
            "region": np.array(REGIONS)[region],
        }
    )
    items = pl.DataFrame(
        {
            "item_id": item_ids,
            "text": _item_texts(rng, topic, topic_names),
            "price_tier": np.array(PRICE_TIERS)[price],
        }
    )
    interactions = log_table(user_ids[users_idx], item_ids[items_idx], exposure, outcome, seconds, is_test)

    # Truth: every (user, item) pair's potential outcomes (a sample of users' in a large
    # world), and the DAG that generated them.
    all_u, all_i = truth_pairs(truth_users(rng, nu, ni), ni)
    q0, q1, _ = probabilities(all_u, all_i)
    uplift = uplift_table(user_ids[all_u], item_ids[all_i], q0, q1)
    train = ~is_test
    ate = float(np.mean(p1[train] - p0[train]))
    confounders = ["age_group", "item_topic", "price_tier"]
    edges = [(v, "exposure") for v in confounders] + [(v, "outcome") for v in confounders]
    edges += [("activity", "exposure"), ("exposure", "outcome")]
    nodes = ["age_group", "activity", "region", "item_topic", "price_tier", "exposure", "outcome"]
    truth = GroundTruth(edges=edges, nodes=nodes, ate=ate, confounders=confounders, uplift=uplift)
    return Dataset(users=users, items=items, interactions=interactions, truth=truth, name="simulator")


class SimulatorIngest(IngestPlugin):
    """The built-in simulated world (see module docstring); emits its truth too."""

    Config = SimulatorConfig

    def load(self, context: PluginContext) -> Dataset:
        data = simulate(self.config)  # type: ignore[arg-type]
        context.log.info(
            "simulated %d users, %d items, %d interactions (true ATE %.4f)",
            data.users.height,
            data.items.height,
            data.interactions.height,
            data.truth.ate if data.truth else float("nan"),
        )
        return data
