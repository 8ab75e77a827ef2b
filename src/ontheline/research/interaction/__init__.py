"""The interaction tensor of models, data and features, and the feature-learning framework it motivates.

Jiang, Baek and Kolter, "On the Joint Interaction of Models, Data, and Features" (ICLR 2024,
arXiv:2306.04793). :func:`build_interaction_tensor` makes the binary tensor of features x models x
data points from a zoo's penultimate activations (:func:`penultimate_activations`,
:func:`benchmark_networks`); :func:`tensor_statistics` measures what the paper observes in it;
:class:`FeatureModel` is the combinatorial framework, whose closed-form accuracy and agreement
(:func:`expected_accuracy`, :func:`expected_agreement`) are checked by :func:`simulate` and fitted to
a tensor by :func:`fit_feature_model`; :func:`gde_breaking_model` is a distribution where GDE fails.
``ontheline repro interaction`` runs it on the benchmark's digits and MNIST networks.
"""

from ontheline.research.interaction.activations import benchmark_networks, penultimate_activations, probe_activations
from ontheline.research.interaction.fit import FittedFramework, fit_feature_model, point_features
from ontheline.research.interaction.framework import (
    FeatureModel,
    expected_accuracy,
    expected_agreement,
    expected_gde_gap,
    gde_breaking_model,
    gde_holding_model,
    miss_probability,
    simulate,
)
from ontheline.research.interaction.statistics import (
    DOMINANT_FREQUENCY,
    TensorStatistics,
    tensor_statistics,
    threshold_sweep,
)
from ontheline.research.interaction.tensor import (
    InteractionTensor,
    build_interaction_tensor,
    cluster_features,
    principal_features,
)

__all__ = [
    "DOMINANT_FREQUENCY",
    "FeatureModel",
    "FittedFramework",
    "InteractionTensor",
    "TensorStatistics",
    "benchmark_networks",
    "build_interaction_tensor",
    "cluster_features",
    "expected_accuracy",
    "expected_agreement",
    "expected_gde_gap",
    "fit_feature_model",
    "gde_breaking_model",
    "gde_holding_model",
    "miss_probability",
    "penultimate_activations",
    "point_features",
    "principal_features",
    "probe_activations",
    "simulate",
    "tensor_statistics",
    "threshold_sweep",
]
