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
    rec_unit: np.ndarray,
    seq_unit: np.ndarray,
    seq_type_names: list[str],
    seq_labels: list[str],
    prefixes: list[str] | None = None,
) -> list[str]:
    """For each recommended item, the recent sequence entry whose item embedding is closest to it.

    ``rec_unit``: [K, D] L2-normalised rows of the recommended items; ``seq_unit``: [S, D] those of the
    newest sequence entries; ``prefixes`` optionally start some reasons (e.g. "new item"). Cost: K x S dot
    products.

    >>> v = np.array([[1., 0.], [0.9, 0.1], [0., 1.]])
    >>> v = v / np.linalg.norm(v, axis=1, keepdims=True)
    >>> explain_by_sequence(v[1:2], v[[0, 2]], ["view", "purchase"], ["'Tent'", "'Stove'"])
    ["because you viewed 'Tent' (similarity 0.99)"]
    """
    if len(rec_unit) == 0:
        return []
    sims = rec_unit @ seq_unit.T  # [K, S]
    best = sims.argmax(axis=1).tolist()
    out = []
    for k, j in enumerate(best):
        verb = _VERBS.get(seq_type_names[j], f"did '{seq_type_names[j]}' on")
        reason = f"because you {verb} {seq_labels[j]} (similarity {float(sims[k, j]):.2f})"
        if prefixes is not None and prefixes[k]:
            reason = f"{prefixes[k]}: {reason}"
        out.append(reason)
    return out
