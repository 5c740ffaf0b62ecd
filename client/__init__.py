"""logtide: the command-line client (send, stats, top, watch, events, tail, prime)."""
