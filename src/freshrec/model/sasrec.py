"""SASRec-style causal transformer over a user's item sequence.

Kang & McAuley, "Self-Attentive Sequential Recommendation" (ICDM 2018), trained as in Klenitskiy &
Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?" (RecSys 2023): next-item
prediction at every position with a full-softmax cross-entropy over the catalogue instead of the paper's
one-negative binary cross-entropy.

How this implementation deviates from the paper, and why:

* **Pre-norm blocks** (LayerNorm before attention and feed-forward) with a final LayerNorm: trains stably
  without warm-up at the learning rates we use.
* **Right padding with forward positions.** Sequences are left-aligned (oldest item at position 0, padding
  after the newest), so plain causal attention (``is_causal=True``) never lets a real position look at
  padding. That lets PyTorch use its fused scaled-dot-product kernel with no explicit mask, and the
  trainer trims each length-bucketed batch to its longest sequence, so padding costs almost nothing.
* **Event-type embeddings** (view, click, purchase, ...) are added to the input, as HSTU does with action
  types; with a single type (MovieLens ratings) this is a constant shift and changes nothing.
* **Cheaper dropout on CPU** (:class:`Dropout`): one 64-bit random draw masks eight elements, with the
  rate rounded to 1/256. ``torch.dropout`` draws a random number per element, and on these CPUs that
  made dropout ~28% of a training step (profiled in the online trainer); CUDA keeps ``F.dropout``.
* **No dropout on the attention weights** (the paper applies it): on CPU any rate makes PyTorch replace its
  fused attention kernel with one that materialises and masks every weight matrix (~30% of a training
  step), for no measured gain in quality; dropout stays on embeddings, attention output and feed-forward.
* **Tied output embeddings:** the score of item ``i`` is the dot product of the last hidden state with
  the item's input embedding, so ``item_vectors()`` is both the input table and the retrieval index.
* **A conversion head** (multi-task, when the training data has conversion events such as purchases): one
  learned score per item, added to the next-item logits, so that ``softmax(h . e_i + b_i)`` is the next
  *conversion* where ``softmax(h . e_i)`` is the next interaction. By Bayes' rule ``b_i`` is then the log
  of how often an interaction with item ``i`` converts (up to a constant). It learns from the conversion
  targets only, with the hidden state and item table held fixed (no gradient into them), so the
  engagement objective is trained as without it: conversions are a few percent of the targets, too few
  for a per-user head to learn from without pulling the shared table away from next interactions. Any
  blend of the two objectives' log-probabilities is the dot product plus ``weight * b_i``
  (:meth:`SASRec.item_bias`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

PAD = 0

#: What a request can rank for, as the weight :meth:`SASRec.item_bias` puts on the conversion head:
#: ``engagement`` the next interaction, ``conversion`` the next conversion (purchase), ``blend`` both
#: objectives' log-probabilities with equal weight.
OBJECTIVES: dict[str, float] = {"engagement": 0.0, "blend": 0.5, "conversion": 1.0}


@dataclass(frozen=True)
class SASRecConfig:
    """Architecture of one model; stored in every published version's metadata.

    Parameters
    ----------
    num_items
        Catalogue size N the item table was built for (row 0 is padding, rows 1..N are items).
    dim
        Embedding and hidden size D.
    heads, layers
        Attention heads per block and number of blocks.
    dropout
        Dropout on embeddings, attention and feed-forward outputs.
    max_len
        Longest sequence L the model reads; older items are cut off.
    ffn_mult
        Feed-forward hidden size as a multiple of ``dim``.
    num_types
        Number of distinct event types the type embedding knows (0 turns it off).
    conversion_types
        Event-type codes whose entries are conversions (purchases): non-empty adds the conversion head.
    """

    num_items: int
    dim: int = 64
    heads: int = 2
    layers: int = 2
    dropout: float = 0.2
    max_len: int = 200
    ffn_mult: int = 4
    num_types: int = 0
    conversion_types: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        raw = asdict(self)
        raw["conversion_types"] = list(self.conversion_types)
        return raw

    @classmethod
    def from_dict(cls, raw: dict) -> SASRecConfig:
        """The config stored in a version's metadata. Keys that only shaped training (``attention_dropout``)
        are ignored; an architecture this code does not have (several ``towers``) is refused.

        >>> SASRecConfig.from_dict({"num_items": 5, "attention_dropout": 0.2, "towers": 1}).num_items
        5
        """
        raw = dict(raw)
        raw.pop("attention_dropout", None)
        if raw.pop("towers", 1) != 1:
            raise ValueError("this version has several towers, an architecture this freshrec does not support")
        raw["conversion_types"] = tuple(int(c) for c in raw.get("conversion_types", ()))
        return cls(**raw)


class Dropout(nn.Module):
    """Inverted dropout whose CPU mask costs one random int64 per eight elements.

    The effective rate is ``round(p * 256) / 256`` (0.3 -> 0.3008); the kept elements are scaled by
    ``1 / (1 - rate)`` as usual. On CUDA, or for rates that round to 0 or 1, it is ``F.dropout``.

    Example
    -------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> drop = Dropout(0.25).train()
    >>> y = drop(torch.ones(100_000))
    >>> round(float((y == 0).float().mean()), 2), float(y.max())
    (0.25, 1.3333333730697632)
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.set_rate(p)

    def set_rate(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.p = p
        self.threshold = round(p * 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or not 0 < self.threshold < 256:
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        words = torch.randint(
            torch.iinfo(torch.int64).min, torch.iinfo(torch.int64).max, ((n + 7) // 8,), dtype=torch.int64
        )
        keep = words.view(torch.uint8)[:n].view(x.shape) >= self.threshold
        return x * keep * (256.0 / (256 - self.threshold))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, L, D]
        return self.out(self.mix(x))

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output before the output projection: [B, L, D]."""
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, L, D/H]
        return y.transpose(1, 2).reshape(b, length, d)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, ffn_mult: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_mult * dim), nn.GELU(), Dropout(dropout), nn.Linear(ffn_mult * dim, dim)
        )
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L, D] -> [B, L, D]; with ``positions`` (flat indices into B x L) -> [M, D] at those only.

        Every position still feeds the keys and values, but the output projection, the feed-forward
        network and the residuals (three quarters of a block's matrix work) run only where asked.
        """
        mixed = self.attn.mix(self.norm1(x))
        if positions is not None:
            d = x.shape[-1]
            mixed = mixed.reshape(-1, d).index_select(0, positions)
            x = x.reshape(-1, d).index_select(0, positions)
        x = x + self.drop(self.attn.out(mixed))
        return x + self.drop(self.ffn(self.norm2(x)))


class SASRec(nn.Module):
    """Causal transformer that maps an item sequence to a user vector in item-embedding space.

    Example
    -------
    >>> import torch
    >>> model = SASRec(SASRecConfig(num_items=50, dim=16, heads=2, layers=1, max_len=8))
    >>> items = torch.tensor([[3, 7, 9, 0], [5, 0, 0, 0]])   # right-padded, 0 = padding
    >>> model.encode(items, lengths=torch.tensor([3, 1])).shape
    torch.Size([2, 16])
    >>> model.item_vectors().shape
    torch.Size([50, 16])
    """

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.config = config
        self.item_emb = nn.Embedding(config.num_items + 1, config.dim, padding_idx=PAD)
        self.pos_emb = nn.Embedding(config.max_len, config.dim)
        self.type_emb = nn.Embedding(config.num_types + 1, config.dim, padding_idx=0) if config.num_types else None
        self.emb_drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.dim, config.heads, config.dropout, config.ffn_mult) for _ in range(config.layers)
        )
        self.final_norm = nn.LayerNorm(config.dim)
        self.conversion = nn.Embedding(config.num_items + 1, 1, padding_idx=PAD) if config.conversion_types else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.item_emb.weight, std=self.config.dim**-0.5)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        if self.type_emb is not None:
            nn.init.normal_(self.type_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()
            if self.conversion is not None:  # starts as the engagement head: nothing to unlearn
                self.conversion.weight.zero_()

    @classmethod
    def from_state(cls, config: SASRecConfig, state: dict[str, torch.Tensor]) -> SASRec:
        """A model whose parameters are ``state``'s tensors themselves, not copies of them: the item table
        ([N + 1, D], most of the weights at a large catalogue) is never allocated twice.

        >>> model = SASRec(SASRecConfig(num_items=5, dim=8, heads=1, layers=1, max_len=4))
        >>> state = model.state_dict()
        >>> SASRec.from_state(model.config, state).item_emb.weight.data_ptr() == state["item_emb.weight"].data_ptr()
        True
        >>> with_head = SASRec(SASRecConfig(num_items=5, dim=8, heads=1, layers=1, max_len=4, conversion_types=(2,)))
        >>> SASRec.from_state(with_head.config, with_head.state_dict()).conversion.weight.shape
        torch.Size([6, 1])
        """
        model = cls(replace(config, num_items=0))  # a one-row table, replaced below
        model.item_emb = nn.Embedding(
            config.num_items + 1, config.dim, padding_idx=PAD, _weight=state["item_emb.weight"], _freeze=False
        )
        if model.conversion is not None:  # one float per item: small, but sized to the table
            model.conversion = nn.Embedding(config.num_items + 1, 1, padding_idx=PAD)
        model.config = config
        model.load_state_dict(state, assign=True)
        return model

    @property
    def num_items(self) -> int:
        """Rows in the item table, padding excluded (grows with :meth:`grow_items`)."""
        return self.item_emb.num_embeddings - 1

    def forward(
        self, items: torch.Tensor, types: torch.Tensor | None = None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Hidden state at every position. ``items``: [B, L] int64 (right-padded) -> [B, L, D].

        With ``positions`` ([M] flat indices into B x L) only those rows come out, [M, D]: the same values
        as ``forward(items, types).reshape(-1, D)[positions]``, but the last block skips the positions no
        one reads (padding, context-only entries), which is most of them when serving one user vector per
        sequence or fine-tuning on a few new entries per user.
        """
        length = items.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.config.max_len}")
        x = self.item_emb(items) * math.sqrt(self.config.dim)
        x = x + self.pos_emb.weight[:length]
        if self.type_emb is not None and types is not None:
            x = x + self.type_emb(types)
        x = self.emb_drop(x)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, positions if i == last else None)
        if positions is not None and not len(self.blocks):
            x = x.reshape(-1, x.shape[-1]).index_select(0, positions)
        return self.final_norm(x)

    def set_dropout(self, p: float) -> None:
        """Change every dropout rate in place (the config keeps the rate the model was built with).

        >>> model = SASRec(SASRecConfig(num_items=5, dim=8, heads=1, layers=1, max_len=4, dropout=0.3))
        >>> model.set_dropout(0.0)
        """
        for module in self.modules():
            if isinstance(module, Dropout):
                module.set_rate(p)

    def encode(self, items: torch.Tensor, lengths: torch.Tensor, types: torch.Tensor | None = None) -> torch.Tensor:
        """User vectors from the newest position of each sequence: [B, L] -> [B, D]."""
        newest = torch.arange(items.shape[0], device=items.device) * items.shape[1] + (lengths - 1)
        return self.forward(items, types, positions=newest)

    def item_bias(self, conversion: float = 0.0) -> torch.Tensor | None:
        """[N + 1] what ranking for an objective adds to each item's dot-product score: ``conversion`` times
        the conversion head's per-item scores (0: engagement, 1: the next conversion, between: a blend of
        the two log-probabilities); ``None`` for engagement or a model without the head.

        >>> model = SASRec(SASRecConfig(num_items=3, dim=4, heads=1, layers=1, max_len=4, conversion_types=(2,)))
        >>> model.item_bias(1.0).tolist(), model.item_bias(0.0)
        ([0.0, 0.0, 0.0, 0.0], None)
        """
        if self.conversion is None or conversion == 0.0:
            return None
        return conversion * self.conversion.weight[:, 0]

    def item_vectors(self) -> torch.Tensor:
        """Item table without the padding row: [N, D]; row ``i`` is item index ``i + 1``."""
        return self.item_emb.weight[1:]

    def grow_items(self, new_rows: torch.Tensor) -> None:
        """Append rows to the item table in place; existing rows keep their values.

        ``new_rows``: [M, D] initial vectors for items N+1..N+M (from content, co-occurrence or random).
        """
        old = self.item_emb.weight.data
        if new_rows.shape[1] != old.shape[1]:
            raise ValueError(f"new rows have dim {new_rows.shape[1]}, table has {old.shape[1]}")
        grown = nn.Embedding(old.shape[0] + new_rows.shape[0], old.shape[1], padding_idx=PAD)
        grown = grown.to(device=old.device, dtype=old.dtype)
        with torch.no_grad():
            grown.weight[: old.shape[0]] = old
            grown.weight[old.shape[0] :] = new_rows.to(old)
        self.item_emb = grown
        if self.conversion is not None:
            bias = self.conversion.weight.data
            longer = nn.Embedding(grown.num_embeddings, 1, padding_idx=PAD).to(device=bias.device, dtype=bias.dtype)
            with torch.no_grad():
                longer.weight[: bias.shape[0]] = bias
                # a new item converts like the average item until its own conversions say otherwise
                longer.weight[bias.shape[0] :] = bias[1:].mean() if bias.shape[0] > 1 else 0.0
            self.conversion = longer
        self.config = replace(self.config, num_items=grown.num_embeddings - 1)
