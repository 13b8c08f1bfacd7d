"""Exceptions callers can act on; the HTTP layer maps each to a status code and the CLI to a message."""

from __future__ import annotations


class FreshrecError(Exception):
    """Base class. ``status`` is the HTTP status the API answers with."""

    status = 500


class InvalidInput(FreshrecError, ValueError):
    """The request or file is malformed; nothing was stored."""

    status = 422


class PayloadTooLarge(InvalidInput):
    """A batch or body exceeds a configured limit; nothing was stored."""

    status = 413


class NotFound(FreshrecError, LookupError):
    status = 404


class ModelUnavailable(FreshrecError):
    """No model version is loaded (train one first)."""

    status = 503


class Unavailable(FreshrecError):
    """A backing service (the Kafka broker, Redis) did not answer in time; nothing was acknowledged, so the
    client may retry (with ``event_id`` set, a retried event is stored once)."""

    status = 503
