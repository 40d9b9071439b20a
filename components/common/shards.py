"""Packed shards (placeholder until the library evaluation is done)."""

from __future__ import annotations


def is_shards(url: str) -> bool:
    return False


def open_shards(url: str, resolution):
    raise NotImplementedError
