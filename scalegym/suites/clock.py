"""The timestamps a run writes (manifest, records), shared by the runner and the Ray executor."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """The time now in UTC to the second, as the manifest and records write it."""
    return datetime.now(UTC).isoformat(timespec="seconds")
