"""Secrets an operator sets: which values may never guard a real deployment."""

from __future__ import annotations

__all__ = ["is_placeholder_secret"]

_PLACEHOLDERS = {"", "changeme", "change-me", "change_me", "secret", "admin", "password", "dev"}


def is_placeholder_secret(value: str) -> bool:
    """True for values that must never guard a real deployment."""
    lowered = value.strip().lower()
    return lowered in _PLACEHOLDERS or "change" in lowered or "placeholder" in lowered
