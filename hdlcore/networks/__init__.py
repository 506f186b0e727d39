"""Chapter 4, deep extension: parallel positively homogeneous subnetworks, product-of-norms regularizers,
proximal training, polars, certificates, the meta-algorithm for networks and a convex oracle.
"""

from .certificates import (
    NetworkCertificate,
    add_subnetwork,
    certify_network,
)
from .convex_oracle import (
    ConvexReLUResult,
    activation_patterns_2d,
    convex_relu,
)
from .last_layer import (
    LastLayerResult,
    fit_last_layer,
)
from .meta import (
    GrowNetworkResult,
    grow_network,
)
from .model import (
    ParallelSubnetworks,
)
from .patterns import (
    PatternFitResult,
    fit_within_patterns,
)
from .polars import (
    Polar,
    polar_linear,
    polar_lower_bound,
    polar_one_hidden_2d,
    polar_upper_bound,
)
from .problem import (
    LOSSES,
    network_loss,
)
from .proximal import (
    train_step,
)
from .regularizers import (
    REGULARIZERS,
    network_regularizer,
    network_regularizer_grad,
    prox_subnetworks,
    rebalance,
    regularizer_degree,
    subnetwork_regularizer,
    zero_subnets,
)
from .training import (
    TrainResult,
    train,
)
from .training_many import (
    train_many,
)

__all__ = [
    "ParallelSubnetworks",
    "REGULARIZERS",
    "regularizer_degree",
    "subnetwork_regularizer",
    "network_regularizer",
    "network_regularizer_grad",
    "prox_subnetworks",
    "rebalance",
    "zero_subnets",
    "LOSSES",
    "network_loss",
    "train_step",
    "TrainResult",
    "train",
    "train_many",
    "LastLayerResult",
    "fit_last_layer",
    "PatternFitResult",
    "fit_within_patterns",
    "Polar",
    "polar_one_hidden_2d",
    "polar_linear",
    "polar_lower_bound",
    "polar_upper_bound",
    "NetworkCertificate",
    "certify_network",
    "add_subnetwork",
    "GrowNetworkResult",
    "grow_network",
    "ConvexReLUResult",
    "activation_patterns_2d",
    "convex_relu",
]
