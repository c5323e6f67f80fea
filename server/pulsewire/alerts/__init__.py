"""Alerts: rules, the per-(rule, device) state machine, channels and notifications; pure cores, no I/O."""
