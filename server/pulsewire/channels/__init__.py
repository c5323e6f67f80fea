"""The WebSocket channels: devices in (`/ws/device`), dashboards out (`/ws/live`), and what they share."""
