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


The worlds' mechanisms (propensity, baseline, effect) are described in ``scenario_worlds``;
``draw_world`` here samples the log from them, the same way for all, with the pair drawing and
table writing of ``scenario_pairs``. Every name of those two modules that callers use is
importable from here as well.
"""

from __future__ import annotations

import numpy as np

from causalrec_assets.plugin_api import Dataset, GroundTruth
from causalrec_plugins.ingest.scenario_pairs import (
    DENSE_PAIRS,
    TRUTH_PAIRS,
    distinct_items,
    log_table,
    logged_pairs,
    pair_normal,
    truth_pairs,
    truth_users,
    uplift_table,
)
from causalrec_plugins.ingest.scenario_worlds import (
    ADJECTIVES,
    AGE_GROUPS,
    CATEGORY_WORDS,
    PRICE_TIERS,
    REGIONS,
    SCENARIOS,
    Mechanisms,
    Scenario,
    attribute_world,
    category_of,
    interaction_world,
    mechanisms,
    numeric_world,
    sigmoid,
    taste_world,
)

__all__ = [
    "ADJECTIVES",
    "AGE_GROUPS",
    "CATEGORY_WORDS",
    "DENSE_PAIRS",
    "PRICE_TIERS",
    "REGIONS",
    "SCENARIOS",
    "TRUTH_PAIRS",
    "Mechanisms",
    "Scenario",
    "attribute_world",
    "category_of",
    "distinct_items",
    "draw_world",
    "interaction_world",
    "log_table",
    "logged_pairs",
    "mechanisms",
    "numeric_world",
    "pair_normal",
    "sample_world",
    "sigmoid",
    "taste_world",
    "truth_pairs",
    "truth_users",
    "uplift_table",
]


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
