"""Ingest: listeners, RFC 6587 framing, batching, in-order release and backpressure (first in the flow)."""
