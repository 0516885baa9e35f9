"""Direct webhooks from the monitor: signed, retried, never lost."""
