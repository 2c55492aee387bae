"""dashboard.views.hidden_states."""
