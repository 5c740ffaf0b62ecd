"""logtallyd: the logtally daemon (listeners, framing, worker pool, windows, detectors, control)."""
