"""Chapter 2, positive homogeneity: the degree of any network or regularizer, measured.
"""

from .degree import (
    DEFAULT_SCALES,
    HALF_SCALES,
    DegreeCheck,
    DegreeResult,
    balanced_rescaling,
    check_degrees,
    default_rtol,
    degree,
    euler_degree,
)

__all__ = [
    "DegreeResult",
    "DegreeCheck",
    "degree",
    "euler_degree",
    "check_degrees",
    "balanced_rescaling",
    "default_rtol",
    "DEFAULT_SCALES",
    "HALF_SCALES",
]
