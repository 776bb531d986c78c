"""Alerts: rules per user, channels, and the notification outbox (issue 16, first slice)."""
