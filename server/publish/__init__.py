"""Publishing: the control protocol and port, subscriptions, the tail filter, HTTP and metrics (last in the flow)."""
