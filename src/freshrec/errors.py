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


class Unauthorized(FreshrecError):
    """No API key, or one that is unknown or revoked."""

    status = 401


class Forbidden(FreshrecError):
    """The API key is valid but lacks the scope the request needs."""

    status = 403


class Conflict(FreshrecError):
    """The request contradicts what is stored (an ``event_id`` already stored with another payload)."""

    status = 409


class UnsupportedMediaType(InvalidInput):
    """A request body that is not JSON."""

    status = 415


class TooManyRequests(FreshrecError):
    """The API key's rate limit is spent; ``retry_after`` seconds until a request is allowed again."""

    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
