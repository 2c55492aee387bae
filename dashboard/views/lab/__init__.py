"""dashboard.views.lab."""
