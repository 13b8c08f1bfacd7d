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


def test_faiss_matches_exact_on_a_small_catalogue() -> None:
    from freshrec.index.base import build_index

    torch.manual_seed(0)
    vectors = torch.randn(300, 16)
    queries = torch.randn(5, 16)
    allowed = torch.ones(300, dtype=torch.bool)
    allowed[10:40] = False
    exclude = [np.array([1, 2, 3]), np.array([]), np.array([50]), np.array([]), np.array([7])]
    exact_ids, exact_scores = build_index(vectors, "exact").topk(queries, 10, exclude, allowed)
    for kind in ("faiss-flat", "faiss-hnsw"):
        ids, scores = build_index(vectors, kind).topk(queries, 10, exclude, allowed)
        assert ids.tolist() == exact_ids.tolist(), kind
        assert np.allclose(scores, exact_scores, atol=1e-4)
    assert type(build_index(vectors, "auto")).__name__ == "ExactIndex"
    assert type(build_index(vectors, "auto", auto_threshold=100)).__name__ == "FaissIndex"
