"""The daemon: config, the parts and how they are wired, listeners, lifecycle, CLI and systemd glue."""
