# Sourced by server/run and tests/run: make .venv and install Pulsewire into it when pyproject.toml changed.
# $1: the extras to install ("devkit" for server/run, "test" for tests/run, which includes it).
pw_venv() {
  local extras="${1:-}" spec="." stamp
  [ -n "$extras" ] && spec=".[$extras]"
  command -v python3 >/dev/null || { echo "python3 (3.11 or newer) is needed" >&2; return 1; }
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "Python 3.11 or newer is needed; found $(python3 --version)" >&2; return 1; }
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating virtual environment in .venv" >&2
    python3 -m venv .venv
  fi
  stamp="$(sha256sum pyproject.toml | cut -c1-16)-$extras"
  if [ "$(cat .venv/.pulsewire-installed 2>/dev/null)" != "$stamp" ]; then
    echo "==> installing Pulsewire and its packages into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
    echo "$stamp" > .venv/.pulsewire-installed
  fi
}
