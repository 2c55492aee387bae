"""backend.tasks.sentiment.core."""
