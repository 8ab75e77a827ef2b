"""ontheline: predict your models' accuracy on unlabelled, shifted data, and know when to trust it.

>>> import ontheline as otl
>>> id_probs, id_labels, ood_probs, ood_labels = otl.make_line_zoo(n_models=8)  # or your zoo's predictions
>>> result = otl.ALineD(n_bootstrap=0).fit(id_probs, id_labels).estimate(ood_probs)
>>> result.trusted, otl.rank_models(result)[0].name
(True, 'model_0')
"""

from ontheline._validation import (
    AgreementNotLinearWarning,
    EstimationError,
    InputError,
    ModelFallbackWarning,
    NotFittedError,
)
from ontheline.agreement import AgreementLine, accuracy, pairwise_agreement, probit
from ontheline.estimators import (
    AC,
    ATC,
    BOUNDS,
    COT,
    COTT,
    DIS2,
    GDE,
    METHODS,
    ALineD,
    ALineS,
    BoundResult,
    DoC,
    EstimateResult,
    Estimator,
)
from ontheline.evaluate import RANKING_METHOD, Evaluation, RankedModel, evaluate, rank_models
from ontheline.predictions import Predictions, as_predictions
from ontheline.synthetic import make_line_zoo

__version__ = "0.1.0"

__all__ = [
    "AC",
    "AgreementLine",
    "AgreementNotLinearWarning",
    "ALineD",
    "ALineS",
    "ATC",
    "BOUNDS",
    "BoundResult",
    "COT",
    "COTT",
    "DIS2",
    "DoC",
    "EstimateResult",
    "EstimationError",
    "Estimator",
    "Evaluation",
    "GDE",
    "InputError",
    "METHODS",
    "ModelFallbackWarning",
    "NotFittedError",
    "Predictions",
    "RANKING_METHOD",
    "RankedModel",
    "accuracy",
    "as_predictions",
    "evaluate",
    "make_line_zoo",
    "pairwise_agreement",
    "probit",
    "rank_models",
]
