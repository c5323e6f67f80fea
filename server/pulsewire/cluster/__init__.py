"""The cluster: what several Pulsewire instances say to each other (`envelope.py`, no I/O) and how
it travels between them over Redis (`bus.py`)."""
