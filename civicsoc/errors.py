"""Errors that say where they came from.

Every error a user can cause carries its origin (a config key, a store URL, a file and line) so the
CLI can print one line that points at the thing to fix, the way pySigma's errors carry the rule
location.
"""

from __future__ import annotations


class CivicsocError(Exception):
    """Base of every error civicsoc raises on purpose; the CLI prints these as one line."""


class ConfigError(CivicsocError):
    """A configuration value is missing or malformed.

    ``problems`` holds one line per bad key, each naming the key, where it came from (file or
    environment variable) and what was expected.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


class StoreError(CivicsocError):
    """The store failed; ``url`` is the store URL with any password removed."""

    def __init__(self, url: str, cause: str) -> None:
        self.url = url
        self.cause = cause
        super().__init__(f"store {url}: {cause}")


class StoreUnavailable(StoreError):
    """The store cannot be reached or refused the connection."""


class NotFound(CivicsocError):
    """A record does not exist, or exists outside the caller's tenants (the two look the same)."""

    def __init__(self, collection: str, record_id: str) -> None:
        self.collection = collection
        self.record_id = record_id
        super().__init__(f"{collection} record {record_id!r} not found")


class TenantDenied(CivicsocError):
    """The caller tried to write a record of a tenant outside its scope."""

    def __init__(self, collection: str, tenant: str) -> None:
        self.collection = collection
        self.tenant = tenant
        super().__init__(f"{collection}: no access to tenant {tenant!r}")


class AlreadyExists(CivicsocError):
    """A record with this id exists already (create is never an overwrite)."""

    def __init__(self, collection: str, record_id: str) -> None:
        self.collection = collection
        self.record_id = record_id
        super().__init__(f"{collection} record {record_id!r} exists already")


class VersionConflict(CivicsocError):
    """Someone changed the record since the caller read it: re-read, re-apply, retry."""

    def __init__(self, collection: str, record_id: str, expected: str) -> None:
        self.collection = collection
        self.record_id = record_id
        self.expected = expected
        super().__init__(
            f"{collection} record {record_id!r} changed since version {expected}; re-read it and retry"
        )


class InvalidQuery(CivicsocError):
    """A query names a field, sort or cursor the store cannot use."""
