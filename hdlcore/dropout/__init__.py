"""Chapter 5, dropout analysis: the expected dropout (and DropConnect) loss of a factorization, the
low-rank regularizer it induces, its closed-form optimum and training with real masks.
"""

from .dropconnect import (
    SCHEMES,
    dropconnect_mask_shape,
    dropconnect_output,
    dropconnect_penalty,
    dropconnect_risk,
    dropconnect_risk_exact,
    dropconnect_risk_mc,
)
from .regularizer import (
    DropoutOptimum,
    dropout_global_minimum,
    dropout_omega,
    dropout_optimum,
    equalized_factorization,
    squared_nuclear_shrinkage,
)
from .risk import (
    MonteCarloEstimate,
    column_products,
    dropout_lambda,
    dropout_penalty,
    dropout_risk,
    dropout_risk_exact,
    dropout_risk_mc,
    duplicate_columns,
    keep_schedule,
)
from .training import (
    TRAINING_SCHEMES,
    DropoutTraining,
    dropout_objective,
    train_dropout,
)

__all__ = [
    "MonteCarloEstimate",
    "dropout_lambda",
    "keep_schedule",
    "column_products",
    "dropout_penalty",
    "dropout_risk",
    "dropout_risk_exact",
    "dropout_risk_mc",
    "duplicate_columns",
    "SCHEMES",
    "dropconnect_mask_shape",
    "dropconnect_output",
    "dropconnect_penalty",
    "dropconnect_risk",
    "dropconnect_risk_exact",
    "dropconnect_risk_mc",
    "DropoutOptimum",
    "dropout_omega",
    "equalized_factorization",
    "squared_nuclear_shrinkage",
    "dropout_global_minimum",
    "dropout_optimum",
    "TRAINING_SCHEMES",
    "DropoutTraining",
    "dropout_objective",
    "train_dropout",
]
