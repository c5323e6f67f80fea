"""Firmware releases and rollouts (docs/fleet.md): the bundle format and the rollout state machine
as pure cores, and the runtime that sends `update` commands and follows each device's progress."""
