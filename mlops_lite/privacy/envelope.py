"""Moved to ``mlops_lite.crypto.envelope`` (below the stores); this name is kept for imports
written against it."""

from mlops_lite.crypto.envelope import *  # noqa: F403
from mlops_lite.crypto.envelope import __doc__ as _doc  # noqa: F401
