"""sdhub's built-in plugins, installed as ``hub_plugins``.

Each module is registered through the ``sdhub`` entry-point group, exactly like a third-party
plugin, so anything a built-in does, an external plugin can do (or override).
"""
