"""The running server: the app factory, its services, and uvicorn."""
