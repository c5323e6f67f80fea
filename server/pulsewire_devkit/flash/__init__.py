"""`pulsewire flash`: from a blank ESP32 to a device streaming to the server, in one command.

The modules, in the order the command uses them:

- command.py: the click command (pulsewire.cli.devkit loads it when `pulsewire flash` is called).
- plan.py: the options turned into a Plan, checked before anything is touched: the board's
  configuration (validated by the firmware's own config.py and sensors.py), the identity, the
  MicroPython image.
- dryrun.py: the plan printed for `--dry-run`.
- run.py: the steps in order, each one numbered progress line (progress.py).
- registry.py: the server step and the identity step: register the device, or rotate its token.
- api.py: the server's HTTP API: devices, register, rotate, reachable.
- mpy.py: the files the firmware's manifest names, compiled with mpy-cross (main.py stays source).
- image.py: the MicroPython image: its header read for the chip, written with esptool (optional).
- repl.py: a connection to MicroPython's raw REPL on the board over mpremote (a serial port or
  socket://): files, reset, what the board prints.
- copying.py: the copy step: the configuration and the manifest's files written, stale ones removed.
- waiting.py: the wait step: until the server sees the device online.
- console.py: what the board prints on its console after the reset, read for why it is not online.
- errors.py: FlashError, which every step raises with what to do.

Tests call `plan.make_plan(plan.Options(...))` and `run.run(plan, ui)` directly. Nothing is
imported here, so loading the command costs no more than command.py itself.
"""
