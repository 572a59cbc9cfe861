"""The catalogue: what sdhub knows about model files, in SQLite or any SQLAlchemy database."""

from .models import SCHEMA_VERSION
from .records import FileRecord, SourceInfo
from .store import Catalogue

__all__ = ["Catalogue", "FileRecord", "SourceInfo", "SCHEMA_VERSION"]
