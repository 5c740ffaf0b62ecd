"""Alert routes: anomaly events pushed to webhooks, Slack, Alertmanager or a command."""
