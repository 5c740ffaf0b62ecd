"""Statistics: the mergeable partial aggregates workers build, sketches, templates, and event-time windows."""
