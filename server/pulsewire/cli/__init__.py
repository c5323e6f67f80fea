"""The `pulsewire` command."""
