"""Running models: the Sampler and Pipeline protocols and what ``sdhub generate`` / ``hub.pipeline`` drive.

torch and diffusers are imported only inside functions, so this room can be imported without them.
"""
