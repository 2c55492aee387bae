"""deepscope for your own training scripts: ``deepscope.init`` opens a run; see docs/api.md.

The code lives in :mod:`backend.client`; this package is its public name.
"""
from backend.client import DeepscopeWarning, Run, import_lstmvis, init

__all__ = ["init", "Run", "DeepscopeWarning", "import_lstmvis"]
