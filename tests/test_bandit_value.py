"""Off-policy value on a real log with known propensities (the Open Bandit Dataset sample,
read inside obp's wheel): each policy's value estimated from the other policy's log agrees
with the rate it earned on its own log; the estimators are exact where the target is the
logging policy; a log with impossible propensities is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from causalrec_plugins.ingest.obd import default_wheel, read_open_bandit
from causalrec_toolkit.bandit import BanditLog, action_distribution, bandit_policy_value

needs_obd = pytest.mark.skipif(not default_wheel().exists(), reason="obp's wheel is not in the cache: make obd")
CAMPAIGNS = ("all", "men", "women")


def both_logs(campaign: str) -> tuple[BanditLog, BanditLog]:
    random, bts = (read_open_bandit(default_wheel(), policy, campaign) for policy in ("random", "bts"))
    random.n_actions = bts.n_actions = max(random.n_actions, bts.n_actions)
    return random, bts


@needs_obd
@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_thompson_samplings_value_from_the_random_log_covers_its_own_rate(campaign: str) -> None:
    """Open Bandit Pipeline's own check: Bernoulli TS's click rate, estimated from the uniform
    policy's log (TS's action distribution from its log), lies in each estimator's interval."""
    random, bts = both_logs(campaign)
    rate = bts.on_policy[0]
    for name, (value, low, high) in bandit_policy_value(random, action_distribution(bts)).items():
        assert low <= rate <= high, (campaign, name, value, low, high, rate)


@needs_obd
@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_the_uniform_policys_value_from_the_thompson_log_agrees_with_its_rate(campaign: str) -> None:
    """The other way round, the target exactly uniform: the gap to the random log's own rate is
    within both intervals together (the rate is itself an estimate from 10,000 impressions)."""
    random, bts = both_logs(campaign)
    uniform = np.full((bts.n_actions, bts.len_list), 1 / bts.n_actions)
    rate, rate_low, _ = random.on_policy
    for name in ("ips", "dr"):
        value, low, _ = bandit_policy_value(bts, uniform)[name]
        assert abs(value - rate) <= math.hypot(value - low, rate - rate_low), (campaign, name, value, rate)


def test_the_logging_policy_valued_on_its_own_log_is_its_rate() -> None:
    rng = np.random.default_rng(0)
    n, actions, positions = 20_000, 5, 2
    probs = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    action = rng.choice(actions, n, p=probs)
    position = rng.integers(0, positions, n)
    reward = (rng.random(n) < 0.05 + 0.02 * action).astype(float)
    log = BanditLog(action, position, reward, probs[action], actions, positions)
    target = np.repeat(probs[:, None], positions, axis=1)
    values = bandit_policy_value(log, target)
    assert values["ips"][0] == pytest.approx(reward.mean())  # weights of exactly 1
    assert values["snips"][0] == pytest.approx(reward.mean())
    # a policy that shows the best action only: truth 0.05 + 0.02 * 4
    best = np.zeros((actions, positions))
    best[4] = 1.0
    for name, (value, low, high) in bandit_policy_value(log, best).items():
        assert low <= 0.13 <= high, (name, value, low, high)


def test_a_log_with_impossible_propensities_is_refused() -> None:
    with pytest.raises(ValueError, match="1 rounds have a pscore outside"):
        BanditLog(np.array([0, 1]), np.array([0, 0]), np.array([1, 0]), np.array([0.5, 0.0]), 2, 1)
    with pytest.raises(ValueError, match="differ in length"):
        BanditLog(np.array([0, 1]), np.array([0]), np.array([1, 0]), np.array([0.5, 0.5]), 2, 1)
