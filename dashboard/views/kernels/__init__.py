"""dashboard.views.kernels."""
