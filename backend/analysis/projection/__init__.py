"""backend.analysis.projection.core."""
