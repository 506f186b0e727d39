"""Chapter 3, matrix factorization: the convex problem and the factorized one, column-norm pairs and
their polars, certificates of global optimality, the grow meta-algorithm and the regularization path.
"""

from . import certificates, columns, convex, factorized, meta, norms, path, problem, spectral
from .certificates import *  # noqa: F403
from .columns import *  # noqa: F403
from .convex import *  # noqa: F403
from .factorized import *  # noqa: F403
from .meta import *  # noqa: F403
from .norms import *  # noqa: F403
from .path import *  # noqa: F403
from .problem import *  # noqa: F403
from .spectral import *  # noqa: F403

__all__ = [
    *problem.__all__,
    *norms.__all__,
    *spectral.__all__,
    *certificates.__all__,
    *columns.__all__,
    *convex.__all__,
    *factorized.__all__,
    *meta.__all__,
    *path.__all__,
]
