"""What a download may do: its retry policy, connections, chunk sizes, time-outs and the limits it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

USER_AGENT = "sdhub/0.1 (+https://github.com/sdhub; python-requests)"
REDIRECT_CODES = (301, 302, 303, 307, 308)
RETRY_STATUS = (429, 500, 502, 503, 504)
# Bodies a model file is never served as: an error page saved as "model.safetensors" is the #1 complaint.
NON_MODEL_CONTENT_TYPES = ("text/html", "application/json", "text/plain")
# ...unless the file asked for is text itself (a config.json, a README): then only an HTML page is an error page.
TEXT_FILE_SUFFIXES = (".json", ".yaml", ".yml", ".txt", ".md", ".toml", ".csv")




@dataclass
class RetryPolicy:
    """How often and how long to wait on 429/5xx and dropped connections.

    ``max_wait`` caps every single wait (a server asking ``Retry-After: 3600`` is not obeyed
    blindly); tests set it tiny so fault tests stay fast.
    """

    attempts: int = 5
    base_wait: float = 1.0
    max_wait: float = 30.0

    def wait_for(self, attempt: int, retry_after: float | None) -> float:
        wanted = retry_after if retry_after is not None else self.base_wait * (2 ** max(attempt - 1, 0))
        return max(0.0, min(wanted, self.max_wait))


@dataclass
class DownloadOptions:
    """Engine settings; ``connections`` > 1 splits files of at least ``parallel_min_size`` bytes."""

    connections: int = 1
    parallel_min_size: int = 32 * 1024 * 1024
    chunk_size: int = 256 * 1024  # bytes lost on a dropped connection are at most one chunk
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: tuple[float, float] = (10.0, 60.0)
    free_space_margin: int = 16 * 1024 * 1024
    lock_timeout: float | None = None
    user_agent: str = USER_AGENT
    state_every_bytes: int = 8 * 1024 * 1024
    # SHA-256 while streaming (free on real networks). hub.install turns it off because it
    # fingerprints every file afterwards anyway (all six hashes in one read).
    hash_while_downloading: bool = True
