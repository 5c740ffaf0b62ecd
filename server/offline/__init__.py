"""File tools: `analyze`, `validate` and `parse`, the same cores driven from files instead of sockets."""
