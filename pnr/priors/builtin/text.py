"""Word-level text encoder over the object domain's vocabulary, trained jointly with the prior.

Why not a pretrained sentence embedder: nothing can be downloaded on the machines this project runs
on, and the domain's captions use a closed vocabulary of a few hundred words. A word tokenizer plus
a 2-layer transformer ships in well under 1 MB, and an unknown word becomes a clear PromptError that
names the closest known words (difflib) instead of a silent, meaningless embedding.
"""

from __future__ import annotations

import difflib
import re

import torch
from torch import Tensor, nn

from pnr.errors import PromptError

PAD, CLS = "<pad>", "<cls>"
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def split_words(prompt: str) -> list[str]:
    """Lower-case words; punctuation is dropped ("A red, striped vase." -> [a, red, striped, vase])."""
    return _WORD.findall(prompt.lower())


class Tokenizer:
    """Maps prompts to fixed-length id rows `[CLS] w1 w2 ... PAD...`; the empty prompt is just [CLS]."""

    def __init__(self, vocab: list[str], max_tokens: int):
        self.words = [PAD, CLS] + [w for w in vocab if w not in (PAD, CLS)]
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.max_tokens = max_tokens

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """-> ids [B, L] long, mask [B, L] bool (True = real token)."""
        ids = torch.zeros(len(prompts), self.max_tokens, dtype=torch.long)
        for i, p in enumerate(prompts):
            row = [self.ids[CLS]] + [self._id(w, p) for w in split_words(p)]
            if len(row) > self.max_tokens:
                raise PromptError(f"prompt {p!r} has {len(row) - 1} words; the built-in prior reads at most "
                                  f"{self.max_tokens - 1}")
            ids[i, : len(row)] = torch.tensor(row)
        return ids, ids != self.ids[PAD]

    def _id(self, word: str, prompt: str) -> int:
        if word in self.ids:
            return self.ids[word]
        close = difflib.get_close_matches(word, self.words[2:], n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise PromptError(f"the built-in prior does not know the word {word!r} in prompt {prompt!r}{hint} "
                          f"(it knows {len(self.words) - 2} words of the object domain; use --prior for another prior)")


class TextEncoder(nn.Module):
    """ids [B, L] -> tokens [B, L, D] (token 0 = [CLS], used as the pooled sentence vector)."""

    def __init__(self, vocab_size: int, max_tokens: int, dim: int, layers: int, heads: int):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        h = self.tok(ids) + self.pos[: ids.shape[1]]
        h = self.layers(h, src_key_padding_mask=~mask)
        return self.norm(h)
