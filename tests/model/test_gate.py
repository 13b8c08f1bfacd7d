"""The gate's decision rule on hand-built models: tolerance, paired noise allowance, damage."""

from __future__ import annotations

import numpy as np
import torch

from freshrec.model.data import EvalSet
from freshrec.model.gate import Anchor, compare
from freshrec.model.sasrec import SASRec, SASRecConfig

N_ITEMS = 40


def identity(idx: np.ndarray) -> np.ndarray:
    return np.asarray(idx)


def chain_model() -> SASRec:
    """A model whose user vector after item i points at item i + 1 (a learnable chain)."""
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=N_ITEMS, dim=16, heads=2, layers=1, max_len=8, dropout=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.arange(1, N_ITEMS).view(-1, 1)
    for _ in range(300):
        logits = model(x)[:, -1] @ model.item_emb.weight[1:].T
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(1, N_ITEMS))  # next item's row
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def holdout(n: int, seed: int) -> EvalSet:
    rng = np.random.default_rng(seed)
    starts = rng.integers(1, N_ITEMS, size=n)
    # mostly the chain's next item, sometimes a random one: per-user NDCG varies, as on real holdouts
    targets = np.where(rng.random(n) < 0.7, starts + 1, rng.integers(1, N_ITEMS + 1, size=n)).clip(1, N_ITEMS)
    return EvalSet(
        [f"u{i}" for i in range(n)],
        [np.array([s]) for s in starts],
        [np.zeros(1, dtype=np.int64) for _ in starts],
        targets.astype(np.int64),
    )


def test_equal_models_pass_and_scrambled_weights_fail_with_or_without_noise_allowance() -> None:
    current = chain_model()
    data = {"recent": holdout(60, 1)}
    for z in (0.0, 1.64):
        same = compare((current, identity), (current, identity), data, 0.0, "v1", noise_z=z)
        assert same.accepted, same.reason
        assert same.figures["recent"]["paired"]["mean_diff"] == 0.0
    damaged = chain_model()
    with torch.no_grad():
        damaged.item_emb.weight[1:] = damaged.item_emb.weight[1:][torch.randperm(N_ITEMS)]
    for z in (0.0, 1.64):
        decision = compare((damaged, identity), (current, identity), data, 0.01, "v1", noise_z=z)
        assert not decision.accepted, decision.reason
        assert decision.figures["recent"]["paired"]["se"] > 0


def test_noise_allowance_accepts_a_slightly_worse_candidate_on_a_small_holdout_only() -> None:
    current = chain_model()
    worse = chain_model()
    with torch.no_grad():  # damage a few items: a small, real loss
        rows = worse.item_emb.weight
        rows[[3, 4]] = rows[[4, 3]]
    small = {"recent": holdout(40, 2)}
    strict = compare((worse, identity), (current, identity), small, 0.0, "v1", noise_z=0.0)
    lenient = compare((worse, identity), (current, identity), small, 0.0, "v1", noise_z=1.64)
    cand = strict.figures["recent"]["candidate"]["ndcg@10"]
    cur = strict.figures["recent"]["current"]["ndcg@10"]
    assert cand < cur and not strict.accepted
    se = lenient.figures["recent"]["paired"]["se"]
    assert lenient.accepted == (cand >= cur - 1.64 * se)
    assert lenient.accepted, lenient.reason  # two swapped rows on 40 users: within the noise
    big = {"recent": holdout(4000, 3)}
    assert not compare((worse, identity), (current, identity), big, 0.0, "v1", noise_z=1.64).accepted


def test_anchor_stops_losses_compounding_down_the_lineage() -> None:
    """Each step loses a little to its parent (inside the per-step bar) but the sum does not pass the
    lineage's first version: without the anchor the ratchet would let every step through."""
    first = chain_model()
    data = {"older": holdout(4000, 4)}
    anchor = Anchor.score("v1", (first, identity), data["older"])
    alone = compare((first, identity), None, data, 0.0, None)
    assert np.isclose(anchor.gains.mean(), alone.figures["older"]["candidate"]["ndcg@10"])
    current, candidate = chain_model(), chain_model()
    with torch.no_grad():  # current already lost two items; the candidate loses two more
        for model, pairs in ((current, [(3, 4)]), (candidate, [(3, 4), (10, 11)])):
            for a, b in pairs:
                model.item_emb.weight[[a, b]] = model.item_emb.weight[[b, a]]
    step = compare((candidate, identity), (current, identity), data, 0.1, "v2", noise_z=1.64)
    assert step.accepted, step.reason  # within 10% of its parent
    anchored = compare((candidate, identity), (current, identity), data, 0.1, "v2", 1.64, anchors={"older": anchor})
    cand = anchored.figures["older"]["candidate"]["ndcg@10"]
    ref = anchored.figures["older"]["anchor"]["ndcg@10"]
    se = anchored.figures["older"]["paired_anchor"]["se"]
    assert anchored.accepted == (cand >= 0.9 * ref - 1.64 * se)
    assert step.figures["older"]["current"]["ndcg@10"] > cand and ref > step.figures["older"]["current"]["ndcg@10"]
    # a tolerance the two-step loss exceeds but each step does not
    tight = 1 - (cand + 1.64 * se) / ref - 0.001
    assert compare((candidate, identity), (current, identity), data, tight, "v2", 1.64).accepted
    lineage = compare((candidate, identity), (current, identity), data, tight, "v2", 1.64, anchors={"older": anchor})
    assert not lineage.accepted and "lineage's first version" in lineage.reason and "(v1)" in lineage.reason
    # the anchor is a fixed reference: comparing the first version with itself passes
    assert compare((first, identity), (current, identity), data, 0.0, "v2", 1.64, anchors={"older": anchor}).accepted


def test_standard_error_counts_users_not_rows() -> None:
    """Several targets of one user are not independent evidence: repeating every user's row three times
    leaves the paired standard error as it was."""
    current, worse = chain_model(), chain_model()
    with torch.no_grad():
        worse.item_emb.weight[[3, 4]] = worse.item_emb.weight[[4, 3]]
    once = holdout(200, 5)
    thrice = EvalSet(
        [u for u in once.users for _ in range(3)],
        [x for x in once.items for _ in range(3)],
        [t for t in once.types for _ in range(3)],
        np.repeat(once.targets, 3),
    )
    a = compare((worse, identity), (current, identity), {"h": once}, 0.0, "v1", 1.64).figures["h"]["paired"]
    b = compare((worse, identity), (current, identity), {"h": thrice}, 0.0, "v1", 1.64).figures["h"]["paired"]
    assert a["se"] > 0 and np.isclose(a["se"], b["se"]) and np.isclose(a["mean_diff"], b["mean_diff"])
    assert b["n"] == 600 and b["users"] == 200


def test_current_ranks_scored_before_give_the_same_decision() -> None:
    current, damaged = chain_model(), chain_model()
    with torch.no_grad():
        damaged.item_emb.weight[1:] = damaged.item_emb.weight[1:][torch.randperm(N_ITEMS)]
    data = {"older": holdout(60, 4)}
    fresh = compare((damaged, identity), (current, identity), data, 0.01, "v1", noise_z=1.64)
    assert set(fresh.ranks["current"]) == {"older"} and "ranks" not in fresh.to_dict()
    reused = compare(
        (damaged, identity), (current, identity), data, 0.01, "v1", 1.64, current_ranks=fresh.ranks["current"]
    )
    assert reused.figures == fresh.figures and reused.accepted == fresh.accepted is False
    # ranks that are the candidate's own would wrongly pass it: proof that the given ranks are used
    fooled = compare(
        (damaged, identity), (current, identity), data, 0.01, "v1", 1.64, current_ranks=fresh.ranks["candidate"]
    )
    assert fooled.accepted
    # ranks of another holdout size are ignored, not trusted
    wrong = {"older": np.zeros(3, dtype=np.int64)}
    assert compare((damaged, identity), (current, identity), data, 0.01, "v1", 1.64, current_ranks=wrong).figures == (
        fresh.figures
    )
