"""Chapter 3, matrix factorization: the convex problem and the factorized one, column-norm pairs and
their polars, certificates of global optimality, and the grow meta-algorithm.
"""

from .certificates import (
    Certificate,
    certify,
    polar,
)
from .convex import (
    prox_nuclear,
    solve_convex,
)
from .factorized import (
    factorized_objective,
    solve_factorized,
)
from .meta import (
    grow,
)
from .norms import (
    NORM_PAIRS,
    NORMS,
    ColumnNorm,
    NormPair,
    PolarResult,
    norm_pair,
)
from .spectral import (
    EXACT_SIZE_LIMIT,
    SigmaMax,
    sigma_max,
)

__all__ = [
    "ColumnNorm",
    "NormPair",
    "PolarResult",
    "NORMS",
    "NORM_PAIRS",
    "norm_pair",
    "SigmaMax",
    "sigma_max",
    "EXACT_SIZE_LIMIT",
    "Certificate",
    "polar",
    "certify",
    "prox_nuclear",
    "solve_convex",
    "solve_factorized",
    "factorized_objective",
    "grow",
]
