"""logtided: the logtide daemon (listeners, framing, worker pool, windows, detectors, control)."""
