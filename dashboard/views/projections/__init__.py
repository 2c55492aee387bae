"""dashboard.views.projections."""
