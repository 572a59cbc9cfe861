"""Kept for plugins written against the old path: the pipeline protocol lives in :mod:`hub.running.pipelines`."""
from hub.running.pipelines import *  # noqa: F401,F403
