"""Interop with the UIs people keep their models in: sidecars beside models, links into UI layouts."""
