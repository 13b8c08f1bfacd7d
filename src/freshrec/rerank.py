"""What happens to a scored list before it is returned: the reason each item is there."""

from __future__ import annotations

import numpy as np
import torch

_VERBS = {
    "view": "viewed",
    "click": "clicked",
    "cart": "added to cart",
    "purchase": "bought",
    "like": "liked",
    "rating": "rated",
}


def describe(item_id: str, title: str | None) -> str:
    return f"'{title}'" if title else item_id


def explain_by_sequence(
    rec_rows: np.ndarray,
    seq_rows: np.ndarray,
    seq_type_names: list[str],
    seq_labels: list[str],
    unit_vectors: torch.Tensor,
) -> list[str]:
    """For each recommended row, the recent sequence entry whose item embedding is closest to it.

    ``rec_rows``: [K] model rows; ``seq_rows``: [S] the newest entries of the user's sequence (rows);
    ``unit_vectors``: [N + 1, D] L2-normalised item embeddings. Cost: K x S dot products.

    >>> import torch, numpy as np
    >>> v = torch.nn.functional.normalize(torch.tensor([[0., 1.], [1., 0.], [0.9, 0.1], [0., 1.]]), dim=1)
    >>> explain_by_sequence(np.array([2]), np.array([1, 3]), ["view", "purchase"], ["'Tent'", "'Stove'"], v)
    ["because you viewed 'Tent' (similarity 0.99)"]
    """
    if len(rec_rows) == 0:
        return []
    sims = unit_vectors[torch.from_numpy(rec_rows)] @ unit_vectors[torch.from_numpy(seq_rows)].T  # [K, S]
    best = sims.argmax(dim=1).tolist()
    out = []
    for k, j in enumerate(best):
        verb = _VERBS.get(seq_type_names[j], f"did '{seq_type_names[j]}' on")
        out.append(f"because you {verb} {seq_labels[j]} (similarity {float(sims[k, j]):.2f})")
    return out
