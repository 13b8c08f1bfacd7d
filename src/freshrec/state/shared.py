"""Trending and onboarding preferences where the state store URL says live state lives: in this process
(``memory://``) or in Redis, shared by every worker (``redis://``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from freshrec.state.preferences import PreferenceStore, RedisPreferenceStore
from freshrec.state.trending import Trending
from freshrec.storage_url import connect_redis


def _is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://"))


def open_trending(url: str, half_life_s: float, more_half_lives_s: Sequence[float] = ()) -> Trending:
    """Trending for the state store a URL names (:class:`~freshrec.state.redis_trending.RedisTrending` for
    ``redis://``).

    >>> open_trending("memory://", 3600.0).half_life_s
    3600.0
    """
    if _is_redis(url):
        from freshrec.state.redis_trending import RedisTrending

        return RedisTrending(connect_redis(url), half_life_s, more_half_lives_s)  # type: ignore[return-value]
    return Trending(half_life_s, more_half_lives_s)


def open_preferences(state_url: str, path: Path, synchronous: str = "FULL") -> PreferenceStore | RedisPreferenceStore:
    """Onboarding preferences beside live state in Redis when the deployment has it, else in the SQLite
    file ``path``."""
    if _is_redis(state_url):
        return RedisPreferenceStore(connect_redis(state_url))
    return PreferenceStore(path, synchronous=synchronous)
