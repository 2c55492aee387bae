"""dashboard.views.training."""
