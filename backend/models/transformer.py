"""A small decoder-only transformer language model (GPT-style, pre-LayerNorm) for the ``lm`` tasks.

Token embedding + learned positional embedding -> ``layers`` blocks -> LayerNorm -> output layer.
Each block: ``x + attention(LayerNorm(x))``, then ``x + MLP(LayerNorm(x))`` (MLP: 4 x d_model, GELU).
Attention is causal: position ``t`` reads positions ``0..t`` only, so the model predicts each next
token from the tokens before it, as the recurrent language models do.

Sizes come from the spec: ``hidden_size`` is d_model, ``heads`` the attention heads (d_model must
divide by it), ``layers`` the blocks, ``dropout`` (attention weights, and each residual branch),
``seq_len`` the context (positions the model has embeddings for). ``embedding_dim`` is not used:
the token embedding has d_model columns, as the residual stream it feeds. The output layer is its
own ``nn.Linear`` (untied), so ``head`` reads like the recurrent models' head.

Training runs attention through ``F.scaled_dot_product_attention`` (fused kernels); for looking
inside, :meth:`TransformerLM.attention_maps` computes the same attention explicitly and returns its
weights. A test checks that both paths give the same logits (to 1e-5).

Example::

    model = build_model(RunSpec.for_task("brackets-lstm", model={"family": "transformer"}))
    logits = model(ids)                      # (batch, T, vocab), T <= spec.seq_len
    maps = model.attention_maps(ids[:1])     # (layers, heads, T, T): rows sum to 1, zero above the diagonal
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MLP_RATIO = 4  # the MLP's hidden width over d_model (GPT-2's)


class Block(nn.Module):
    """One pre-LayerNorm transformer block: causal multi-head self-attention, then the MLP."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, MLP_RATIO * d_model)
        self.out = nn.Linear(MLP_RATIO * d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of ``x`` (B, T, D), each ``(B, heads, T, D / heads)``."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        return tuple(z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))

    def forward(self, x: torch.Tensor, explicit: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(x after the block, attention weights (B, heads, T, T) if explicit else None)``."""
        q, k, v = self._heads(x)
        weights = None
        if explicit:  # the same numbers as the fused kernel, but with the weights in hand
            weights = causal_attention_weights(q, k)
            y = self.drop(weights) @ v if self.training else weights @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(x.shape)
        x = x + self.drop(self.proj(y))
        x = x + self.drop(self.out(F.gelu(self.fc(self.ln2(x)))))
        return x, weights


def causal_attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d_head))`` with every key after its query masked out: ``(..., T, T)``.

    >>> w = causal_attention_weights(torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4))
    >>> bool(w[0, 0, 0, 1:].eq(0).all()), bool(w.sum(-1).sub(1).abs().max() < 1e-6)
    (True, True)
    """
    t = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


class TransformerLM(nn.Module):
    """Token ids ``(B, T)`` -> next-token logits ``(B, T, vocab)``; ``T`` at most ``context``."""

    def __init__(self, vocab_size: int, d_model: int, heads: int, layers: int, context: int, dropout: float = 0.0):
        super().__init__()
        self.context = context
        # the token table first: probes take a model's first nn.Embedding as its token embedding
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.apply(_init)

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        if t > self.context:
            raise ValueError(f"the transformer reads at most {self.context} tokens at once (its context, the "
                             f"run's seq_len), not {t}")
        return self.drop(self.embedding(tokens) + self.position(torch.arange(t, device=tokens.device)))

    def forward(self, tokens: torch.Tensor, explicit: bool = False) -> torch.Tensor:
        """Logits; ``explicit=True`` computes attention without the fused kernel (same result)."""
        x = self._embed(tokens)
        for block in self.blocks:
            x, _ = block(x, explicit)
        return self.head(self.ln_f(x))

    @torch.no_grad()
    def attention_maps(self, tokens: torch.Tensor) -> torch.Tensor:
        """Attention weights of every layer and head over ``tokens`` ``(1, T)``, in eval mode:
        ``(layers, heads, T, T)``, row ``i`` = how much query position ``i`` reads each key position."""
        if tokens.dim() != 2 or tokens.shape[0] != 1:
            raise ValueError(f"attention_maps reads one text, token ids of shape (1, T), not {tuple(tokens.shape)}")
        was_training = self.training
        self.eval()
        try:
            x, maps = self._embed(tokens), []
            for block in self.blocks:
                x, weights = block(x, explicit=True)
                maps.append(weights[0])
            return torch.stack(maps)
        finally:
            self.train(was_training)


def _init(module: nn.Module) -> None:
    """GPT-2's initialisation (normal, sd 0.02; zero biases): trains faster than torch's defaults here."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)

