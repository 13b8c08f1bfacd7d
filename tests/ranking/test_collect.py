"""Ranker requests collected from the log see the live state just before each predicted event, never after."""

from __future__ import annotations

import math

import numpy as np
import torch

from freshrec.model.sasrec import SASRec, SASRecConfig
from freshrec.pipeline import bind
from freshrec.ranking.collect import collect
from freshrec.ranking.features import FEATURES
from freshrec.schema import EventRecord
from freshrec.stores import open_stores
from tests.conftest import make_settings


def test_requests_see_only_the_events_before_the_one_predicted(tmp_path) -> None:
    stores = open_stores(make_settings(tmp_path / "data"))
    try:
        rows = [("a", "x"), ("a", "y"), ("c", "x"), ("c", "z"), ("b", "x"), ("b", "y"), ("d", "x"), ("d", "y")]
        stores.event_log.append([EventRecord(0, u, i, "view", float(n)) for n, (u, i) in enumerate(rows)])
        idx = stores.catalog.internal_ids(["x", "y", "z"])
        torch.manual_seed(0)
        model = SASRec(SASRecConfig(num_items=3, dim=8, heads=1, layers=1, max_len=4))
        serving = bind(stores, model, 3, [])
        # predict b's second entry (y) and d's second entry (y)
        requests = collect(stores, serving, {"b": 1, "d": 1})
        assert len(requests.targets) == 2 and min(requests.targets) >= 0 and requests.recall == 1.0
        assert len(requests.groups) == 2 and requests.y.sum() == 2
        cooc = FEATURES.index("cooc_score")
        start = 0
        for expected_count, g, target in zip((1.0, 2.0), requests.groups, requests.targets, strict=True):
            x = requests.x[start : start + g]
            # when b chose y only a had gone x -> y; by d's turn b had too: the predicted event never counts itself
            assert x[target, cooc] == np.float32(math.log1p(expected_count))
            start += g
        for cands in requests.candidates:
            assert idx[0] not in cands.items  # x is the user's own, seen: never a candidate
    finally:
        stores.close()
