"""Alerts: rules on live data and the per-(rule, device) state machine, as pure cores with no I/O."""
