"""``deepscope.lightning.DeepscopeCallback``: deepscope for PyTorch Lightning (the ``lightning`` extra)."""
from backend.client.lightning import DeepscopeCallback

__all__ = ["DeepscopeCallback"]
