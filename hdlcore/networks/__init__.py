"""Chapter 4, deep extension: parallel positively homogeneous subnetworks, product-of-norms regularizers,
proximal training, polars, certificates, the meta-algorithm for networks and a convex oracle.
"""

from . import (
    certificates,
    convex_oracle,
    last_layer,
    meta,
    model,
    patterns,
    polars,
    problem,
    proximal,
    regularizers,
    training,
    training_many,
)
from .certificates import *  # noqa: F403
from .convex_oracle import *  # noqa: F403
from .last_layer import *  # noqa: F403
from .meta import *  # noqa: F403
from .model import *  # noqa: F403
from .patterns import *  # noqa: F403
from .polars import *  # noqa: F403
from .problem import *  # noqa: F403
from .proximal import *  # noqa: F403
from .regularizers import *  # noqa: F403
from .training import *  # noqa: F403
from .training_many import *  # noqa: F403

__all__ = [
    *model.__all__,
    *regularizers.__all__,
    *problem.__all__,
    *proximal.__all__,
    *training.__all__,
    *training_many.__all__,
    *last_layer.__all__,
    *patterns.__all__,
    *polars.__all__,
    *certificates.__all__,
    *meta.__all__,
    *convex_oracle.__all__,
]
