"""The wire contract with no I/O: the shared rules, the device channel's codec, the live channel's codec."""
