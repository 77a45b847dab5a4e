"""causalrec's toolkit: the stage logic its stages and plugins share, with no Dagster and no
framework import in it (tables, features, Bayesian networks, refutations, evaluation,
off-policy value of ranked lists, sensitivity to unobserved confounding, pictures). Import the
names in each module's ``__all__`` only."""

from causalrec_toolkit.plots import modifier_plot, policy_value_plot
from causalrec_toolkit.policy import ESTIMATORS, VALUE_SCHEMA, list_weights, policy_values, value_of_lists
from causalrec_toolkit.sensitivity import Sensitivity, e_value, sensitivity

__version__ = "0.2.0"
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
