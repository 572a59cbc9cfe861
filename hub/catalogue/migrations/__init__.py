"""Alembic migration scripts for the catalogue, shipped inside the package.

sdhub runs them itself (``hub.catalogue.migrate``: on open, or ``sdhub db upgrade``); users need no
``alembic.ini``. Each revision is ``versions/NNNN_what.py`` with ``revision = "NNNN"``: the number is
also the ``schema_meta.schema_version`` marker that releases before Alembic read, so an old sdhub
opening a newer catalogue refuses it clearly instead of writing to it.

Add one with ``python -m hub.catalogue.migrate revision "what changed"`` after changing models.py,
then regenerate ``registry.db.schema`` (``python -m hub.catalogue.schema > registry.db.schema``).
"""
