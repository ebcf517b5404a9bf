"""Config: what a server is told, the same on every shard."""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs

__all__ = ["Config"]


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (
        isinstance(value, (int, float)) and value > 0 and not math.isnan(value)
    ):
        raise ValueError(f"{attribute.name} must be a positive number or None, not {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (isinstance(value, (int, float)) and value > 0 and not math.isnan(value)):
        raise ValueError(f"{attribute.name} must be a positive number, not {value!r}")


def _root_path(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if value and (not value.startswith("/") or value.endswith("/")):
        raise ValueError(
            f"root_path must be empty or start with '/' and not end with one "
            f"(as '/api'), not {value!r}"
        )
    if not value.isascii():
        raise ValueError(f"root_path must be ASCII (percent-encode the rest), not {value!r}")


@attrs.frozen(kw_only=True)
class Config:
    """The settings of :func:`~shardio_net.asgi.serve` (each is a keyword
    argument of it, documented there and in ``docs/reference/asgi.md``)."""

    root_path: str = attrs.field(default="", validator=_root_path)
    access_log: bool = False
    timeout_graceful_shutdown: float | None = attrs.field(default=30.0, validator=_positive_or_none)
    timeout_keep_alive: float = attrs.field(default=5.0, validator=_positive)
    lifespan: Literal["auto", "on", "off"] = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "on", "off"))
    )
    limit_concurrency: int | None = attrs.field(default=None, validator=_positive_or_none)
    max_header_size: int = attrs.field(default=16384, validator=_positive)
    max_header_count: int = attrs.field(default=100, validator=_positive)
    max_body_size: int | None = attrs.field(default=None, validator=_positive_or_none)
    ws_max_size: int = attrs.field(default=16 * 1024 * 1024, validator=_positive)
    ws_per_message_deflate: bool = True
