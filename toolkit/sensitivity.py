"""How strong an unobserved confounder would have to be to explain an effect away.

E-values (VanderWeele & Ding, 2017): the smallest risk ratio that a confounder would need with
both exposure and outcome, beyond what was adjusted for, to move the estimate (``e_value``) or
the end of its interval nearer to no effect (``e_value_ci``) to no effect. A difference in
rates becomes a risk ratio against the unexposed rate; a difference in a continuous outcome, a
standardised difference ``d`` and the risk ratio ``exp(0.91 d)``.

``e_value_interval`` is the strength that would move the estimate by its own interval's
half-width: how much confounding the interval leaves out.

An E-value says nothing about whether such a confounder exists. A randomized slice can: where
the adjusted estimate and the slice's own difference in means disagree by more than their
intervals allow, confounding of at least that much is *proven* (``proven_bias``,
``proven_e_value``; 1 when nothing is). ``robustness`` is the strength that would move the
estimate by its half-width *beyond* the proven bias: ``e_value_interval`` where nothing is
proven, 1 where the slice proves the headline off by more than its interval (the confounding
that would matter is not hypothetical). The slice's pairs must be like the log's for the
comparison to hold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Sensitivity", "e_value", "sensitivity", "shift_e_value"]

Z95 = 1.959963984540054


def e_value(risk_ratio: float) -> float:
    """The E-value of a risk ratio (of either direction): ``RR + sqrt(RR (RR - 1))``, RR >= 1."""
    if not math.isfinite(risk_ratio) or risk_ratio <= 0:
        return float("nan")
    rr = max(risk_ratio, 1 / risk_ratio)
    return rr + math.sqrt(rr * (rr - 1))


def as_risk_ratio(difference: float, baseline: float, sd: float | None) -> float:
    """A difference on the outcome's scale as a risk ratio: against ``baseline`` (the unexposed
    rate) for a rate, as ``exp(0.91 d)`` with ``d = difference / sd`` for a continuous outcome."""
    if sd is not None:
        return math.exp(0.91 * difference / sd) if sd > 0 else float("nan")
    if baseline <= 0 or baseline + difference <= 0:
        return float("nan")
    return (baseline + difference) / baseline


def shift_e_value(estimate: float, shift: float, baseline: float, sd: float | None) -> float:
    """The E-value of a confounder that moves ``estimate`` by ``shift`` towards no effect (1 when
    ``shift`` <= 0): the E-value of the bias factor between the two risk ratios."""
    if shift <= 0:
        return 1.0
    moved = estimate - math.copysign(shift, estimate)
    return e_value(as_risk_ratio(estimate, baseline, sd) / as_risk_ratio(moved, baseline, sd))


@dataclass
class Sensitivity:
    """The E-values of a headline and what a randomized slice proves about confounding."""

    e_value: float  # to move the estimate to no effect
    e_value_ci: float  # to move the end of its interval nearer to no effect there
    e_value_interval: float  # to move the estimate by its interval's half-width
    proven_bias: float | None  # None: no randomized slice to compare with
    proven_e_value: float
    robustness: float  # to move it by its half-width beyond the bias the slice proves

    def metadata(self) -> dict[str, float | str]:
        values = {k: round(v, 4) for k, v in asdict(self).items() if isinstance(v, float)}
        return {**values, "sensitivity": self.describe()}

    def describe(self) -> str:
        text = (
            f"To explain the headline away, an unobserved confounder would need a risk ratio of at least "
            f"{self.e_value:.2f} with both exposure and outcome beyond what was adjusted for ({self.e_value_ci:.2f} "
            f"to bring its 95% interval to zero); {self.e_value_interval:.2f} would move it by its own interval's "
            "half-width."
        )
        if self.proven_bias is None:
            return text + " No randomized slice benchmarks this: judge whether a confounder that strong is plausible."
        if self.proven_bias <= 0:
            return text + " The randomized slice shows no confounding beyond the intervals."
        return text + (
            f" The randomized slice proves confounding is present: the headline is off the slice's effect by at least "
            f"{self.proven_bias:.4f}, the work of a confounder of {self.proven_e_value:.2f}, so only "
            f"{self.robustness:.2f} more would move it by its interval: treat the headline as confounded."
        )


def sensitivity(
    estimate: float,
    ci_low: float,
    ci_high: float,
    baseline: float,
    sd: float | None = None,
    slice_effect: float | None = None,
    slice_se: float | None = None,
) -> Sensitivity:
    """The E-values of ``estimate`` (a difference; ``baseline``: the unexposed mean; ``sd``:
    the outcome's standard deviation, for a continuous outcome), and, given a randomized slice's
    difference in means and its standard error, the confounding it proves and the robustness."""
    point = e_value(as_risk_ratio(estimate, baseline, sd))
    nearer = ci_low if estimate >= 0 else ci_high
    interval = 1.0 if ci_low <= 0 <= ci_high else e_value(as_risk_ratio(nearer, baseline, sd))
    half_width = (ci_high - ci_low) / 2 if math.isfinite(ci_high - ci_low) else 0.0
    proven, proven_e = None, 1.0
    if slice_effect is not None and slice_se is not None and math.isfinite(slice_effect) and math.isfinite(slice_se):
        gap = estimate - slice_effect
        proven = max(0.0, abs(gap) - Z95 * math.hypot(half_width / Z95, slice_se))
        if proven > 0:
            moved = estimate - math.copysign(proven, gap)
            proven_e = e_value(as_risk_ratio(estimate, baseline, sd) / as_risk_ratio(moved, baseline, sd))
    return Sensitivity(
        e_value=point,
        e_value_ci=interval,
        e_value_interval=shift_e_value(estimate, half_width, baseline, sd),
        proven_bias=proven,
        proven_e_value=proven_e,
        robustness=shift_e_value(estimate, half_width - (proven or 0.0), baseline, sd),
    )
