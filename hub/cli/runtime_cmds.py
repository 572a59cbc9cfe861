"""Commands for this area; filled by the module owner."""

from __future__ import annotations

from .base import cli  # noqa: F401
