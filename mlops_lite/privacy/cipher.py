"""Moved to ``mlops_lite.crypto.cipher`` (below the stores); this name is kept for imports
written against it."""

from mlops_lite.crypto.cipher import *  # noqa: F403
from mlops_lite.crypto.cipher import __doc__ as _doc  # noqa: F401
