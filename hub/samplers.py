"""Kept for plugins written against the old path: the sampler protocol lives in :mod:`hub.running.samplers`."""
from hub.running.samplers import *  # noqa: F401,F403
