"""open_stores(settings): the one place the durable stores are opened, whatever the role.

The API process (through :func:`freshrec.engine.build_engine`), ``freshrec train`` and the online trainer
each open the stores they share here, so every role agrees on where data lives and how it is written.
Live per-user state is not among them: the API process opens it (:func:`freshrec.engine.build_engine`).
"""

from __future__ import annotations

from dataclasses import dataclass

from freshrec.catalog.base import Catalog, open_catalog
from freshrec.config import Settings
from freshrec.content.store import ContentStore
from freshrec.events.base import EventLog, open_event_log
from freshrec.model.registry import ModelRegistry
from freshrec.notify import Channel, model_channel
from freshrec.sequence import EventTypes


@dataclass
class Stores:
    """The durable stores of one data directory, and the event-type registry they are read with.

    ``content`` is ``None`` when content is disabled (``content.enabled = false``).
    """

    settings: Settings
    event_log: EventLog
    catalog: Catalog
    registry: ModelRegistry
    types: EventTypes
    content: ContentStore | None
    #: Where new current model versions are announced (Redis deployments); ``None`` when embedded.
    model_channel: Channel | None = None

    def close(self) -> None:
        self.event_log.close()
        self.catalog.close()
        if self.model_channel is not None:
            self.model_channel.close()


def open_stores(settings: Settings) -> Stores:
    """Open the event log, the catalogue, the model registry and the content store the settings name.

    Example
    -------
    >>> import tempfile
    >>> from freshrec.config import load_settings
    >>> stores = open_stores(load_settings(storage={"data_dir": tempfile.mkdtemp()}))
    >>> stores.event_log.ends(), len(stores.catalog), stores.registry.current()
    ((0,), 0, None)
    >>> stores.close()
    """
    storage = settings.storage
    storage.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = open_catalog(storage.resolved_catalog_url(), synchronous=storage.sqlite_synchronous)
    channel = model_channel(storage.state_url)
    return Stores(
        settings=settings,
        event_log=open_event_log(
            storage.resolved_event_log_url(), synchronous=storage.sqlite_synchronous, shared_url=storage.state_url
        ),
        catalog=catalog,
        registry=ModelRegistry(storage.resolved_model_dir(), on_current=channel.publish if channel else None),
        types=EventTypes(settings.events.types, settings.events.negative_types),
        content=ContentStore(storage.data_dir / "content", catalog) if settings.content.enabled else None,
        model_channel=channel,
    )
