"""What `pulsewire serve` says once it listens: where things are and what to do next."""

from __future__ import annotations

from pathlib import Path

from pulsewire.app.banner import banner
from pulsewire.settings import Settings


def test_a_default_server_says_where_things_are_and_what_to_do_next() -> None:
    text = banner("http://127.0.0.1:8000", Settings(), devkit=True, lan=None)
    for line in (
        "Dashboard:  http://127.0.0.1:8000/",
        "API docs:   http://127.0.0.1:8000/docs",
        "Live:       ws://127.0.0.1:8000/ws/live",
        "pulsewire device add greenhouse-1   (prints its token)",
        "pulsewire simulate 3\n",
        "boards cannot reach 127.0.0.1: serve with --host 0.0.0.0",
        "pulsewire flash --port /dev/ttyUSB0 --server http://<this machine>:8000 --device-id greenhouse-1",
    ):
        assert line in text, line
    assert "pip install" not in text


def test_the_next_steps_carry_the_server_and_data_folder_when_not_the_defaults() -> None:
    settings = Settings(host="0.0.0.0", port=9000, data_dir=Path("/srv/pw"))
    text = banner("http://127.0.0.1:9000", settings, devkit=False, lan="192.168.1.20")
    assert "pulsewire device add greenhouse-1 --server http://127.0.0.1:9000 --data-dir /srv/pw" in text
    assert "pulsewire simulate 3 --server http://127.0.0.1:9000 --data-dir /srv/pw" in text
    assert "pulsewire flash --port /dev/ttyUSB0 --server http://192.168.1.20:9000 --device-id greenhouse-1" in text
    assert "(flashing needs the devkit: pip install 'pulsewire[devkit]')" in text


def test_a_given_admin_key_needs_no_data_folder_in_the_next_steps() -> None:
    text = banner("http://127.0.0.1:8000", Settings(data_dir=Path("x"), admin_key="k"), devkit=True, lan=None)
    assert "--data-dir" not in text


def test_a_tls_server_shows_https_and_wss_and_how_clients_trust_it() -> None:
    settings = Settings(host="0.0.0.0", port=8443, tls_cert=Path("/etc/pw/cert.pem"), tls_key=Path("/etc/pw/key.pem"))
    text = banner("https://127.0.0.1:8443", settings, devkit=True, lan="192.168.1.20")
    for line in (
        "Dashboard:  https://127.0.0.1:8443/",
        "API docs:   https://127.0.0.1:8443/docs",
        "Live:       wss://127.0.0.1:8443/ws/live",
        "pulsewire flash --port /dev/ttyUSB0 --server https://192.168.1.20:8443 --device-id greenhouse-1",
        "SSL_CERT_FILE=/etc/pw/cert.pem",
    ):
        assert line in text, line
    assert "http://" not in text and "ws://" not in text
