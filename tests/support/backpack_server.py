"""The local Backpack exchange for tests; the code is in :mod:`tests.support.backpack`.

``from tests.support.backpack_server import BackpackServer`` and
``from tests.support.backpack import BackpackServer`` are the same class.
"""

from tests.support.backpack import *  # noqa: F403
from tests.support.backpack import __all__ as __all__
