"""Virtual devices (`pulsewire simulate`) running the firmware's own protocol code under CPython."""
