"""Reading model files: safetensors headers, pickles without executing them, the six hashes in one pass.

Every module here takes a path (or an open descriptor) and answers from the bytes alone: no database, no network.
``regular`` is the gate every path passes first (a FIFO or device under a model's name is refused, never opened).
"""

from __future__ import annotations

from .regular import apply_umask_mode, check_not_special, open_regular, require_regular_file, umask_file_mode

__all__ = ["apply_umask_mode", "check_not_special", "open_regular", "require_regular_file", "umask_file_mode"]
