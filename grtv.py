"""Compatibility module: ``from grtv import *`` gives the pyGRTV facade, as in the original viewer."""

from grtv_nb.facade import *  # noqa: F403
from grtv_nb.facade import __all__  # noqa: F401
