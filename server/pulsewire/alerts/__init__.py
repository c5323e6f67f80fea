"""Alerts: the pure cores of rules, channels and notifications, with no I/O."""
