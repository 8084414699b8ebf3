"""Moved to ``mlops_lite.crypto.keys`` (below the stores); this name is kept for imports
written against it."""

from mlops_lite.crypto.keys import *  # noqa: F403
from mlops_lite.crypto.keys import __doc__ as _doc  # noqa: F401
