"""dashboard.views.attention."""
