"""A simulated board: the unmodified firmware on real MicroPython (the WebAssembly port, on Node).

- node.py: finds Node.js and the MicroPython build shipped in vendor/.
- bridge.mjs: bootBoard(), one board in one JS realm; mpy/ is the Python it runs on the board.
- run.mjs: a headless board in a child process, controlled over stdin; runner.py drives it from Python.
- boardsim.mjs: a board whose REPL listens on TCP, for mpremote and `pulsewire flash`; command.py runs it.
"""
