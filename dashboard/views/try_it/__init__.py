"""dashboard.views.try_it."""
