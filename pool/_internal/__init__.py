"""Small internals shared by every part of the library: logs, redaction, resources, backoff.

Nothing in here imports any other part of :mod:`pool`.
"""
