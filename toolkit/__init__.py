"""causalrec's toolkit: the Dagster-free logic its stages and plugins share (off-policy value
of ranked lists, sensitivity of an effect to unobserved confounding, pictures). Import public
names only."""

from causalrec_toolkit.plots import modifier_plot, policy_value_plot
from causalrec_toolkit.policy import ESTIMATORS, VALUE_SCHEMA, list_weights, policy_values, value_of_lists
from causalrec_toolkit.sensitivity import Sensitivity, e_value, sensitivity

__version__ = "0.1.0"
__all__ = [
    "ESTIMATORS",
    "VALUE_SCHEMA",
    "Sensitivity",
    "e_value",
    "list_weights",
    "modifier_plot",
    "policy_value_plot",
    "policy_values",
    "sensitivity",
    "value_of_lists",
]
