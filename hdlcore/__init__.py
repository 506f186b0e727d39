"""hdlcore: global optimality in deep learning, as a library.

Solvers, certificates and GPU training for the book *Global optimality in deep learning:
executable notes* (after R. Vidal's CVPR 2017 tutorial and B. Haeffele and R. Vidal's work).

Every public name is listed once in ``_EXPORTS`` (name -> module) and loaded on first use, so
``import hdlcore`` stays light: torch is imported only by the parts that need it. The same names
are imported under ``TYPE_CHECKING`` for editors and type checkers.

The layout follows the book: :mod:`hdlcore.homogeneity` (Chapter 2), :mod:`hdlcore.matrix`
(Chapter 3), :mod:`hdlcore.networks` (Chapter 4), :mod:`hdlcore.dropout` (Chapter 5), with
:mod:`hdlcore.motivation` (Chapter 1), :mod:`hdlcore.data`, :mod:`hdlcore.notebook`,
:mod:`hdlcore.plotting` and :mod:`hdlcore.tables` beside them. ``hd.grow`` and ``hd.matrix.grow``
are the same function (defined in :mod:`hdlcore.matrix.meta`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> submodule that defines it; one name per line, grouped by chapter.
_EXPORTS: dict[str, str] = {
    # validation and warnings (every chapter)
    "ConvergenceWarning": "_validation",
    "HypothesisWarning": "_validation",
    # notebook helpers and figure style (every chapter)
    "check": "notebook",
    "check_all": "notebook",
    "setup": "notebook",
    "Table": "tables",
    "table": "tables",
    # data made by the code or shipped in a package (several chapters)
    "low_rank_matrix": "data",
    "random_mask": "data",
    "two_spirals": "data",
    # Chapter 1: motivation
    # Chapter 2: positive homogeneity
    "DegreeCheck": "homogeneity.measure",
    "DegreeResult": "homogeneity.measure",
    "balanced_rescaling": "homogeneity.measure",
    "check_degrees": "homogeneity.measure",
    "degree": "homogeneity.measure",
    "euler_degree": "homogeneity.measure",
    # Chapter 3: matrix factorization
    "add_column": "matrix.columns",
    "ColumnStep": "matrix.columns",
    "prox_nuclear": "matrix.convex",
    "solve_convex": "matrix.convex",
    "solve_factorized": "matrix.factorized",
    "factorized_objective": "matrix.factorized",
    "grow": "matrix.meta",
    "grow_path": "matrix.path",
    "select_lambda": "matrix.path",
    "PathResult": "matrix.path",
    "LambdaSelection": "matrix.path",
    "polar": "matrix.certificates",
    "certify": "matrix.certificates",
    "Certificate": "matrix.certificates",
    "MatrixResult": "matrix.problem",
    "NormPair": "matrix.norms",
    "PolarResult": "matrix.norms",
    "norm_pair": "matrix.norms",
    "NORM_PAIRS": "matrix.norms",
    "sigma_max": "matrix.spectral",
    # Chapter 4: deep extension
    "ConvexReLUResult": "networks.convex_oracle",
    "GrowNetworkResult": "networks.meta",
    "LastLayerResult": "networks.last_layer",
    "NetworkCertificate": "networks.certificates",
    "ParallelSubnetworks": "networks.model",
    "PatternFitResult": "networks.patterns",
    "TrainResult": "networks.training",
    "activation_patterns_2d": "networks.convex_oracle",
    "certify_network": "networks.certificates",
    "convex_relu": "networks.convex_oracle",
    "fit_last_layer": "networks.last_layer",
    "fit_within_patterns": "networks.patterns",
    "grow_network": "networks.meta",
    "network_loss": "networks.problem",
    "network_objective": "networks.problem",
    "NetworkObjective": "networks.problem",
    "NetworkPolarResult": "networks.polars",
    "network_regularizer": "networks.regularizers",
    "polar_lower_bound": "networks.polars",
    "polar_one_hidden_2d": "networks.polars",
    "prox_subnetworks": "networks.regularizers",
    "rebalance": "networks.regularizers",
    "subnetwork_regularizer": "networks.regularizers",
    "train": "networks.training",
    "train_many": "networks.training_many",
    "train_step": "networks.proximal",
    # Chapter 5: dropout
    "DropoutOptimum": "dropout.regularizer",
    "DropoutTraining": "dropout.training",
    "MonteCarloEstimate": "dropout.risk",
    "column_products": "dropout.risk",
    "dropconnect_penalty": "dropout.dropconnect",
    "dropconnect_risk": "dropout.dropconnect",
    "dropconnect_risk_exact": "dropout.dropconnect",
    "dropconnect_risk_mc": "dropout.dropconnect",
    "dropout_global_minimum": "dropout.regularizer",
    "dropout_lambda": "dropout.risk",
    "dropout_objective": "dropout.training",
    "dropout_omega": "dropout.regularizer",
    "dropout_optimum": "dropout.regularizer",
    "dropout_penalty": "dropout.risk",
    "dropout_risk": "dropout.risk",
    "dropout_risk_exact": "dropout.risk",
    "dropout_risk_mc": "dropout.risk",
    "duplicate_columns": "dropout.risk",
    "equalized_factorization": "dropout.regularizer",
    "keep_schedule": "dropout.risk",
    "squared_nuclear_shrinkage": "dropout.regularizer",
    "train_dropout": "dropout.training",
}

_SUBMODULES = {
    "data",
    "dropout",
    "homogeneity",
    "matrix",
    "motivation",
    "networks",
    "notebook",
    "plotting",
    "tables",
}

if TYPE_CHECKING:  # the same names, seen by editors and type checkers (a test keeps it in step)
    from . import (
        data,
        dropout,
        homogeneity,
        matrix,
        motivation,
        networks,
        notebook,
        plotting,
        tables,
    )
    from ._validation import (
        ConvergenceWarning,
        HypothesisWarning,
    )
    from .data import (
        low_rank_matrix,
        random_mask,
        two_spirals,
    )
    from .dropout.dropconnect import (
        dropconnect_penalty,
        dropconnect_risk,
        dropconnect_risk_exact,
        dropconnect_risk_mc,
    )
    from .dropout.regularizer import (
        DropoutOptimum,
        dropout_global_minimum,
        dropout_omega,
        dropout_optimum,
        equalized_factorization,
        squared_nuclear_shrinkage,
    )
    from .dropout.risk import (
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
    from .dropout.training import (
        DropoutTraining,
        dropout_objective,
        train_dropout,
    )
    from .homogeneity.measure import (
        DegreeCheck,
        DegreeResult,
        balanced_rescaling,
        check_degrees,
        degree,
        euler_degree,
    )
    from .matrix.certificates import (
        Certificate,
        certify,
        polar,
    )
    from .matrix.columns import (
        ColumnStep,
        add_column,
    )
    from .matrix.convex import (
        prox_nuclear,
        solve_convex,
    )
    from .matrix.factorized import (
        factorized_objective,
        solve_factorized,
    )
    from .matrix.meta import (
        grow,
    )
    from .matrix.norms import (
        NORM_PAIRS,
        NormPair,
        PolarResult,
        norm_pair,
    )
    from .matrix.path import (
        LambdaSelection,
        PathResult,
        grow_path,
        select_lambda,
    )
    from .matrix.problem import (
        MatrixResult,
    )
    from .matrix.spectral import (
        sigma_max,
    )
    from .networks.certificates import (
        NetworkCertificate,
        certify_network,
    )
    from .networks.convex_oracle import (
        ConvexReLUResult,
        activation_patterns_2d,
        convex_relu,
    )
    from .networks.last_layer import (
        LastLayerResult,
        fit_last_layer,
    )
    from .networks.meta import (
        GrowNetworkResult,
        grow_network,
    )
    from .networks.model import (
        ParallelSubnetworks,
    )
    from .networks.patterns import (
        PatternFitResult,
        fit_within_patterns,
    )
    from .networks.polars import (
        NetworkPolarResult,
        polar_lower_bound,
        polar_one_hidden_2d,
    )
    from .networks.problem import (
        NetworkObjective,
        network_loss,
        network_objective,
    )
    from .networks.proximal import (
        train_step,
    )
    from .networks.regularizers import (
        network_regularizer,
        prox_subnetworks,
        rebalance,
        subnetwork_regularizer,
    )
    from .networks.training import (
        TrainResult,
        train,
    )
    from .networks.training_many import (
        train_many,
    )
    from .notebook import (
        check,
        check_all,
        setup,
    )
    from .tables import (
        Table,
        table,
    )

# Spelled out so that tools see it; a test checks it equals the export map plus the subpackages.
__all__ = [
    "Certificate",
    "ColumnStep",
    "ConvergenceWarning",
    "ConvexReLUResult",
    "DegreeCheck",
    "DegreeResult",
    "DropoutOptimum",
    "DropoutTraining",
    "GrowNetworkResult",
    "HypothesisWarning",
    "LambdaSelection",
    "LastLayerResult",
    "MatrixResult",
    "MonteCarloEstimate",
    "NORM_PAIRS",
    "NetworkCertificate",
    "NetworkObjective",
    "NetworkPolarResult",
    "NormPair",
    "ParallelSubnetworks",
    "PathResult",
    "PatternFitResult",
    "PolarResult",
    "Table",
    "TrainResult",
    "__version__",
    "activation_patterns_2d",
    "add_column",
    "balanced_rescaling",
    "certify",
    "certify_network",
    "check",
    "check_all",
    "check_degrees",
    "column_products",
    "convex_relu",
    "data",
    "degree",
    "dropconnect_penalty",
    "dropconnect_risk",
    "dropconnect_risk_exact",
    "dropconnect_risk_mc",
    "dropout",
    "dropout_global_minimum",
    "dropout_lambda",
    "dropout_objective",
    "dropout_omega",
    "dropout_optimum",
    "dropout_penalty",
    "dropout_risk",
    "dropout_risk_exact",
    "dropout_risk_mc",
    "duplicate_columns",
    "equalized_factorization",
    "euler_degree",
    "factorized_objective",
    "fit_last_layer",
    "fit_within_patterns",
    "grow",
    "grow_network",
    "grow_path",
    "homogeneity",
    "keep_schedule",
    "low_rank_matrix",
    "matrix",
    "motivation",
    "network_loss",
    "network_objective",
    "network_regularizer",
    "networks",
    "norm_pair",
    "notebook",
    "plotting",
    "polar",
    "polar_lower_bound",
    "polar_one_hidden_2d",
    "prox_nuclear",
    "prox_subnetworks",
    "random_mask",
    "rebalance",
    "select_lambda",
    "setup",
    "sigma_max",
    "solve_convex",
    "solve_factorized",
    "squared_nuclear_shrinkage",
    "subnetwork_regularizer",
    "table",
    "tables",
    "train",
    "train_dropout",
    "train_many",
    "train_step",
    "two_spirals",
]


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
