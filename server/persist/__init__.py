"""Persistence: snapshots of state, the raw archive and the rejects file."""
