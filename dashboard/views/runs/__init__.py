"""dashboard.views.runs."""
