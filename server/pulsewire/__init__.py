"""Pulsewire: telemetry push service for ESP32-class boards."""

__version__ = "0.1.0"
