"""Probes: what the trainer captures besides metrics (hidden states; kernels and embeddings later)."""
