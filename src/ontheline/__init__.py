"""ontheline: predict your models' accuracy on unlabelled, shifted data, and know when to trust it."""

from ontheline._validation import AgreementNotLinearWarning, ModelFallbackWarning, NotFittedError
from ontheline.agreement import AgreementLine, accuracy, pairwise_agreement, probit
from ontheline.estimators import AC, ATC, GDE, METHODS, ALineD, ALineS, DoC, EstimateResult, Estimator
from ontheline.predictions import Predictions, as_predictions
from ontheline.selection import RankedModel, rank_models
from ontheline.synthetic import make_line_zoo

__version__ = "0.1.0"

__all__ = [
    "AC",
    "ATC",
    "DoC",
    "EstimateResult",
    "Estimator",
    "GDE",
    "METHODS",
    "ALineD",
    "ALineS",
    "make_line_zoo",
    "RankedModel",
    "rank_models",
    "AgreementLine",
    "AgreementNotLinearWarning",
    "ModelFallbackWarning",
    "NotFittedError",
    "Predictions",
    "accuracy",
    "as_predictions",
    "pairwise_agreement",
    "probit",
]
