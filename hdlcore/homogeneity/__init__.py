"""Chapter 2, positive homogeneity: the degree of any network or regularizer, measured."""

from . import measure
from .measure import *  # noqa: F403

__all__ = [*measure.__all__]
