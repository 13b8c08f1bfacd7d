"""Notifications between the processes of a deployment: a Redis pub/sub channel.

The online trainer (or ``freshrec rollback``, or ``POST /v1/model/reload``) announces a new current model
version; every API worker listening swaps it in at once instead of at its next poll of the registry. A
missed message costs nothing but time: workers keep polling the registry as well.
"""

from __future__ import annotations

import contextlib
from typing import Any

from freshrec.storage_url import connect_redis

#: The channel a new current model version is announced on.
MODEL_CHANNEL = "freshrec:model"


class Channel:
    """One Redis pub/sub channel.

    Example
    -------
    >>> channel = Channel("redis://127.0.0.1:6379/0", MODEL_CHANNEL)   # doctest: +SKIP
    >>> channel.publish("v00007")                                      # doctest: +SKIP
    """

    def __init__(self, url: str, name: str) -> None:
        self.client = connect_redis(url)
        self.name = name
        self._pubsub: Any = None

    def publish(self, message: str) -> None:
        """Announce ``message``; never raises (a listener that misses it finds out by polling)."""
        with contextlib.suppress(Exception):  # best effort by design
            self.client.publish(self.name, message)

    def wait(self, timeout: float) -> str | None:
        """The next message, or ``None`` after ``timeout`` seconds (or when Redis is unreachable)."""
        try:
            if self._pubsub is None:
                self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(self.name)
            msg = self._pubsub.get_message(timeout=timeout)
        except Exception:
            self._pubsub = None
            return None
        return None if msg is None else msg["data"].decode()

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
        self.client.close()


def model_channel(state_url: str) -> Channel | None:
    """The model channel of a deployment whose live state is in Redis; ``None`` for the embedded one."""
    if state_url.startswith("redis://") or state_url.startswith("rediss://"):
        return Channel(state_url, MODEL_CHANNEL)
    return None
