"""AttentiveChrome (Singh et al., 2017): attention over bins within marks, then over marks."""

from __future__ import annotations

import torch
from torch import nn

from deepchrome.models.base import SignalNet


class AttentiveChrome(SignalNet):
    """Per-mark bidirectional LSTM with attention over bins, then a BiLSTM with attention over marks.

    Input [batch, marks, bins] -> logits [batch, 2]. After each forward pass the attention weights
    are kept in ``bin_attention`` [batch, marks, bins] and ``mark_attention`` [batch, marks].

    Parameters
    ----------
    bin_hidden
        Hidden size of the bin-level LSTM (each direction).
    mark_hidden
        Hidden size of the mark-level LSTM (each direction).
    dropout
        Dropout on the mark embeddings.
    """

    def __init__(
        self,
        bin_hidden: int = 32,
        mark_hidden: int = 16,
        dropout: float = 0.5,
        n_marks: int | None = None,
        n_bins: int | None = None,
    ) -> None:
        self.bin_hidden = bin_hidden
        self.mark_hidden = mark_hidden
        self.dropout = dropout
        super().__init__(n_marks, n_bins)

    def _build(self, n_marks: int, n_bins: int) -> None:
        self.bin_rnn = nn.LSTM(1, self.bin_hidden, batch_first=True, bidirectional=True)
        self.bin_context = nn.Linear(2 * self.bin_hidden, 1, bias=False)
        self.mark_rnn = nn.LSTM(2 * self.bin_hidden, self.mark_hidden, batch_first=True, bidirectional=True)
        self.mark_context = nn.Linear(2 * self.mark_hidden, 1, bias=False)
        self.mark_dropout = nn.Dropout(self.dropout)
        self.output = nn.Linear(2 * self.mark_hidden, 2)
        self.bin_attention: torch.Tensor | None = None
        self.mark_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [batch, 2] from signals [batch, marks, bins]."""
        batch, marks, bins = x.shape
        states, _ = self.bin_rnn(x.reshape(batch * marks, bins, 1))
        bin_weights = torch.softmax(self.bin_context(states).squeeze(-1), dim=1)
        mark_embedding = (bin_weights.unsqueeze(-1) * states).sum(dim=1).reshape(batch, marks, -1)
        mark_states, _ = self.mark_rnn(self.mark_dropout(mark_embedding))
        mark_weights = torch.softmax(self.mark_context(mark_states).squeeze(-1), dim=1)
        gene = (mark_weights.unsqueeze(-1) * mark_states).sum(dim=1)
        self.bin_attention = bin_weights.reshape(batch, marks, bins).detach()
        self.mark_attention = mark_weights.detach()
        return self.output(gene)
