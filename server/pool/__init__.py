"""The worker pool: what runs in a pool process for a batch, and how log batches and prime jobs share it."""
