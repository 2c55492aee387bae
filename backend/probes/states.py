"""Names of the recorded states per recurrent family (torch-free: the dashboard imports it)."""
from __future__ import annotations

# Per family, the arrays a probe records, in PyTorch's gate order.
STATES = {"lstm": ("h", "c", "i", "f", "g", "o"), "gru": ("h", "r", "z", "n"), "rnn": ("h",)}
GATE_NAMES = {"i": "input gate", "f": "forget gate", "g": "candidate", "o": "output gate",
              "r": "reset gate", "z": "update gate", "n": "candidate", "h": "hidden state h", "c": "cell state c"}
GATES = {"lstm": ("i", "f", "o", "g"), "gru": ("r", "z", "n"), "rnn": ()}
