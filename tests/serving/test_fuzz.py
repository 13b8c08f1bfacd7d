"""Generated inputs against the parsers and the whole API: no input reaches a 500, and every response matches
the published OpenAPI description (status codes, content types, bodies)."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from freshrec.access.keys import open_key_store
from freshrec.errors import InvalidInput
from freshrec.schema import EventIn, ItemIn
from freshrec.serving.app import create_app
from freshrec.serving.deps import parse_batch
from tests.conftest import TrainedStore, make_settings

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "user_id": JSON | st.text(max_size=30),
        "item_id": JSON | st.text(max_size=30),
        "type": JSON | st.sampled_from(["view", "purchase", "Bad", ""]),
        "ts": JSON | st.floats() | st.text(max_size=30),
        "value": JSON,
        "event_id": JSON,
        "context": JSON,
        "extra": JSON,
    },
)


@given(payload=JSON | FIELDS | st.lists(FIELDS, max_size=3) | st.fixed_dictionaries({"events": JSON}))
@settings(max_examples=300, deadline=None)
def test_the_batch_parser_accepts_or_names_the_problem(payload: object) -> None:
    for key, model in (("events", EventIn), ("items", ItemIn)):
        try:
            parsed = parse_batch(payload, key, TypeAdapter(list[model]))
        except InvalidInput as exc:
            assert str(exc)
        else:
            assert all(isinstance(p, model) for p in parsed)


def test_no_generated_request_gets_a_500_or_an_undocumented_answer(trained: TrainedStore, tmp_path: Path) -> None:
    # a trained store: with no model, /similar answers 503 (documented, but a server error to the checks)
    config = make_settings(trained.copy_to(tmp_path / "data"), security={"auth": True, "rate_limit": 0})
    store = open_key_store(config.storage.state_url, config.storage.data_dir)
    key, _ = store.create("fuzzer", ["admin"])
    store.close()
    auth = {"Authorization": f"Bearer {key}"}
    app = create_app(config)
    with TestClient(app) as client:  # the engine is built in the app's lifespan
        client.post("/v1/events", json={"user_id": "u1", "item_id": "i1", "type": "view"}, headers=auth)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def call(case) -> None:
                # positive_data_acceptance: a request the schema allows may still be refused (an unknown event
                # type or category is a 422), which is right
                case.call_and_validate(headers=auth, excluded_checks=[schemathesis.checks.positive_data_acceptance])

            call()
