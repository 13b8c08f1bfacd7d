"""What happens to a scored list before it is returned: the reason each item is there."""

from __future__ import annotations

import numpy as np

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
    unit_vectors: np.ndarray,
) -> list[str]:
    """For each recommended row, the recent sequence entry whose item embedding is closest to it.

    ``rec_rows``: [K] model rows; ``seq_rows``: [S] the newest entries of the user's sequence (rows);
    ``unit_vectors``: [N + 1, D] L2-normalised item embeddings. Cost: K x S dot products.

    >>> v = np.array([[0., 1.], [1., 0.], [0.9, 0.1], [0., 1.]])
    >>> v = v / np.linalg.norm(v, axis=1, keepdims=True)
    >>> explain_by_sequence(np.array([2]), np.array([1, 3]), ["view", "purchase"], ["'Tent'", "'Stove'"], v)
    ["because you viewed 'Tent' (similarity 0.99)"]
    """
    if len(rec_rows) == 0:
        return []
    sims = unit_vectors[rec_rows] @ unit_vectors[seq_rows].T  # [K, S]
    best = sims.argmax(axis=1).tolist()
    out = []
    for k, j in enumerate(best):
        verb = _VERBS.get(seq_type_names[j], f"did '{seq_type_names[j]}' on")
        out.append(f"because you {verb} {seq_labels[j]} (similarity {float(sims[k, j]):.2f})")
    return out
