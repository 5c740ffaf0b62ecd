"""Past one machine: the NATS JetStream connection, the per-node aggregates it carries and the merged fleet view."""
