"""freshrec: a real-time recommender engine.

Durable events, live user state, a transformer sequential recommender that reads each user's latest
sequence, served over HTTP.
"""

from freshrec.config import Settings, load_settings
from freshrec.engine import Engine, build_engine
from freshrec.schema import EventIn, ItemIn, RecommendationList

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "EventIn",
    "ItemIn",
    "RecommendationList",
    "Settings",
    "__version__",
    "build_engine",
    "load_settings",
]
