import numpy as np
import torch

from freshrec.index.exact import ExactIndex


def test_topk_respects_exclusions_and_allowed_mask() -> None:
    vectors = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0]])
    index = ExactIndex(vectors)
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ids, _scores = index.topk(q, k=2)
    assert ids.tolist() == [[1, 2], [4, 3]]
    allowed = torch.tensor([False, True, False, True, True])
    ids, _ = index.topk(q, k=2, exclude=[np.array([1]), np.array([])], allowed=allowed)
    assert ids.tolist() == [[3, 4], [4, 3]]


def test_k_larger_than_catalogue_marks_excluded_with_minus_inf() -> None:
    index = ExactIndex(torch.eye(3))
    ids, scores = index.topk(torch.tensor([[0.0, 1.0, 0.0]]), k=10, exclude=[np.array([2])])
    finite = ids[0][np.isfinite(scores[0])].tolist()
    assert finite == [1] and ids.shape == (1, 3)
