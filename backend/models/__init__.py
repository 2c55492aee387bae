"""Spec -> torch modules. ``build_model(spec)`` is the only entry point."""
from .build import build_model, layer_key

__all__ = ["build_model", "layer_key"]
