"""The collector's configuration file (``civicsoc collect --config collector.yaml``).

One file says who collects for whom, where state lives, and which sources to run. Every problem is
reported with its place in the file (``collector.yaml:14: sources[1].paths: Field required``), all at
once, so agency IT fixes the file in one go.
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from civicsoc.config import TENANT_PATTERN, StoreSettings
from civicsoc.errors import ConfigError
from civicsoc.yamlsource import YamlDocument

SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Source(_Model):
    name: str = Field(pattern=SOURCE_NAME, description="Unique name, shown in metrics and dead letters")


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Paris or UTC)") from None
    return name


class TailSource(_Source):
    """Log files followed as they grow and rotate."""

    type: Literal["tail"]
    paths: list[str] = Field(min_length=1, description="File names or glob patterns, e.g. /var/log/auth.log*")
    format: Literal["auth", "syslog", "audit", "access", "ndjson"]
    timezone: str = Field(default="UTC", description="Zone of timestamps that carry none (RFC 3164 syslog)")
    poll_interval: float = Field(default=1.0, gt=0)
    max_line_bytes: int = Field(default=1 << 20, ge=1024)

    _check_zone = field_validator("timezone")(_zone)


class TlsSettings(_Model):
    """RFC 5425 syslog over TLS, on a port of its own."""

    port: int = Field(default=6514, ge=0, le=65535)
    certificate: Path
    key: Path
    client_ca: Path | None = Field(default=None, description="Require client certificates signed by this CA")


class SyslogSource(_Source):
    """A syslog receiver (RFC 3164 and 5424 over UDP, TCP and TLS)."""

    type: Literal["syslog"]
    host: str = "127.0.0.1"
    udp_port: int | None = Field(default=5514, ge=0, le=65535)
    tcp_port: int | None = Field(default=5514, ge=0, le=65535)
    tls: TlsSettings | None = None
    timezone: str = "UTC"
    max_message_bytes: int = Field(default=64 * 1024, ge=480)

    _check_zone = field_validator("timezone")(_zone)

    @model_validator(mode="after")
    def _some_port(self) -> SyslogSource:
        if self.udp_port is None and self.tcp_port is None and self.tls is None:
            raise ValueError("give udp_port, tcp_port or tls (or several)")
        return self


class EvtxDirectorySource(_Source):
    """A folder where .evtx exports are dropped (e.g. by a scheduled wevtutil epl); each new file is read."""

    type: Literal["evtx_dir"]
    path: Path
    poll_interval: float = Field(default=5.0, gt=0)


class PcapLiveSource(_Source):
    """A live capture on a network interface (pyshark/tshark; needs capture rights)."""

    type: Literal["pcap_live"]
    interface: str
    bpf_filter: str | None = Field(default=None, description="e.g. 'not port 9200' to skip the store's own traffic")


Source = Annotated[TailSource | SyslogSource | EvtxDirectorySource | PcapLiveSource, Field(discriminator="type")]


class CollectorConfig(_Model):
    tenant: str = Field(pattern=TENANT_PATTERN)
    collector_id: str = Field(pattern=SOURCE_NAME, description="This collector's name, unique per tenant")
    state_dir: Path = Field(description="Checkpoints, spool and dead letters live here")
    store: StoreSettings | None = Field(default=None, description="Defaults to the main configuration's store")
    keep_original: bool = True
    batch_size: int = Field(default=1000, ge=1, le=50_000)
    flush_interval: float = Field(default=1.0, gt=0)
    spool_max_mb: int = Field(default=1024, ge=1)
    drain_timeout: float = Field(default=30.0, ge=0, description="Seconds a stop waits to store what was read")
    sources: list[Source] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> CollectorConfig:
        names = [source.name for source in self.sources]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique; repeated: {', '.join(duplicates)}")
        return self


def zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def load_collector_config(path: Path) -> CollectorConfig:
    """Read and validate; ``ConfigError`` lists every problem with ``file:line: path: message``."""
    try:
        document = YamlDocument.load(path)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror})"]) from None
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    if not isinstance(document.data, dict):
        raise ConfigError([f"{path}: expected a mapping of keys at the top"])
    try:
        return CollectorConfig.model_validate(document.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = _yaml_location(error["loc"])
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{document.describe(location)}: {message}")
        raise ConfigError(problems) from None


def _yaml_location(location: tuple[str | int, ...]) -> list[str | int]:
    """Drop the union tags pydantic inserts (``sources.1.tail.paths`` → ``sources[1].paths``)."""
    tags = {"tail", "syslog", "evtx_dir", "pcap_live"}
    return [part for index, part in enumerate(location)
            if not (part in tags and index > 0 and isinstance(location[index - 1], int))]
