"""hdlcore: global optimality in deep learning, as a library.

Solvers, certificates and GPU training for the book *Global optimality in deep learning:
executable notes* (after R. Vidal's CVPR 2017 tutorial and B. Haeffele and R. Vidal's work).

Every public name is listed once in ``_EXPORTS`` (name -> module) and loaded on first use, so
``import hdlcore`` stays light: torch is imported only by the parts that need it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> submodule that defines it; one name per line, grouped by chapter.
_EXPORTS: dict[str, str] = {
    # validation and warnings (every chapter)
    "ConvergenceWarning": "_validation",
    "HypothesisWarning": "_validation",
    # notebook helpers and figure style (every chapter)
    "check": "notebook",
    "setup": "notebook",
    # data made by the code or shipped in a package (several chapters)
    "low_rank_matrix": "data",
    "random_mask": "data",
    "two_spirals": "data",
    # Chapter 1: motivation
    # Chapter 2: positive homogeneity
    "DegreeCheck": "homogeneity",
    "DegreeResult": "homogeneity",
    "balanced_rescaling": "homogeneity",
    "check_degrees": "homogeneity",
    "degree": "homogeneity",
    "euler_degree": "homogeneity",
    # Chapter 3: matrix factorization
    "prox_nuclear": "convex",
    "solve_convex": "convex",
    "solve_factorized": "factorized",
    "factorized_objective": "factorized",
    "grow": "meta",
    "polar": "certificates",
    "certify": "certificates",
    "Certificate": "certificates",
    "MatrixResult": "_matrix",
    "NormPair": "regularizers",
    "PolarResult": "regularizers",
    "norm_pair": "regularizers",
    "NORM_PAIRS": "regularizers",
    "sigma_max": "spectral",
    # Chapter 4: deep extension
    "ConvexReLUResult": "convex_networks",
    "GrowNetworkResult": "network_growth",
    "LastLayerResult": "last_layer",
    "NetworkCertificate": "network_certificates",
    "ParallelSubnetworks": "networks",
    "PatternFitResult": "pattern_polish",
    "TrainResult": "training",
    "activation_patterns_2d": "convex_networks",
    "certify_network": "network_certificates",
    "convex_relu": "convex_networks",
    "fit_last_layer": "last_layer",
    "fit_within_patterns": "pattern_polish",
    "grow_network": "network_growth",
    "network_loss": "training",
    "network_regularizer": "network_regularizers",
    "polar_lower_bound": "network_polars",
    "polar_one_hidden_2d": "network_polars",
    "prox_subnetworks": "network_regularizers",
    "rebalance": "network_regularizers",
    "subnetwork_regularizer": "network_regularizers",
    "train": "training",
    "train_many": "training_many",
    "train_step": "training",
    # Chapter 5: dropout
    "DropoutOptimum": "dropout_regularizer",
    "DropoutTraining": "dropout_training",
    "MonteCarloEstimate": "dropout",
    "column_products": "dropout",
    "dropconnect_penalty": "dropconnect",
    "dropconnect_risk": "dropconnect",
    "dropconnect_risk_exact": "dropconnect",
    "dropconnect_risk_mc": "dropconnect",
    "dropout_global_minimum": "dropout_regularizer",
    "dropout_lambda": "dropout",
    "dropout_objective": "dropout_training",
    "dropout_omega": "dropout_regularizer",
    "dropout_optimum": "dropout_regularizer",
    "dropout_penalty": "dropout",
    "dropout_risk": "dropout",
    "dropout_risk_exact": "dropout",
    "dropout_risk_mc": "dropout",
    "duplicate_columns": "dropout",
    "equalized_factorization": "dropout_regularizer",
    "keep_schedule": "dropout",
    "squared_nuclear_shrinkage": "dropout_regularizer",
    "train_dropout": "dropout_training",
}

_SUBMODULES = {
    "certificates",
    "convex",
    "data",
    "dropconnect",
    "dropout",
    "dropout_regularizer",
    "dropout_training",
    "factorized",
    "homogeneity",
    "meta",
    "network_certificates",
    "network_polars",
    "network_regularizers",
    "networks",
    "notebook",
    "plotting",
    "regularizers",
    "spectral",
}

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'hdlcore' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
