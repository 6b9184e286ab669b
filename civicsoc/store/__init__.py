"""One store interface, two backends: ``open_store`` picks one from the URL's scheme."""

from __future__ import annotations

from civicsoc.config import Settings
from civicsoc.errors import StoreError
from civicsoc.store.base import (
    Bucket,
    BulkResult,
    DateHistogram,
    EventQuery,
    EventRead,
    Page,
    RecordCollection,
    RecordQuery,
    RecordRead,
    Rejection,
    RetentionResult,
    Scope,
    Store,
    Terms,
    TimeRange,
    Versioned,
)

__all__ = [
    "Bucket",
    "BulkResult",
    "DateHistogram",
    "EventQuery",
    "EventRead",
    "Page",
    "RecordCollection",
    "RecordQuery",
    "RecordRead",
    "Rejection",
    "RetentionResult",
    "Scope",
    "Store",
    "Terms",
    "TimeRange",
    "Versioned",
    "open_store",
]


def open_store(settings: Settings, *, setup: bool = True) -> Store:
    """Connect to the configured store and (by default) create what it needs.

    Fails fast with a one-line ``StoreError`` naming the URL and the cause, so a misconfigured
    deployment stops at start rather than at its first write.
    """
    url = settings.store_url
    store: Store
    if url.startswith("sqlite://"):
        from civicsoc.store.sqlite import SqliteStore

        store = SqliteStore(url, synchronous=settings.store.sqlite_synchronous)
    elif url.startswith(("http://", "https://")):
        from civicsoc.store.elasticsearch import ElasticsearchStore

        options = settings.store
        store = ElasticsearchStore(
            url,
            username=options.username,
            password=options.password.get_secret_value() if options.password else None,
            api_key=options.api_key.get_secret_value() if options.api_key else None,
            ca_file=str(options.ca_file) if options.ca_file else None,
            verify_certs=options.verify_certs,
            prefix=options.index_prefix,
            request_timeout=options.request_timeout,
        )
    else:
        raise StoreError(url, "unknown scheme; expected sqlite:///path.db or http(s)://host:9200")
    if setup:
        try:
            store.setup()
        except BaseException:
            store.close()
            raise
    return store
