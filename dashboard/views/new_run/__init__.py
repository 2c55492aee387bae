"""dashboard.views.new_run."""
