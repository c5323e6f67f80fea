"""A simulated board: the unmodified firmware on real MicroPython (the WebAssembly port, on Node).

- node.py: finds Node.js and installs the pinned MicroPython package once (ensure_modules).
- bridge.mjs: bootBoard(), one board in one JS realm; mpy/ is the Python it runs on the board.
- run.mjs: a headless board in a child process, controlled over stdin.
- runner.py: SimBoard, that child process driven from Python.
"""
