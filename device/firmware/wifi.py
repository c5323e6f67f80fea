"""Joining the Wi-Fi network, and staying on it."""

import asyncio

import hardware

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

if TYPE_CHECKING:
    from state import Device


async def join(ssid: str, password: str, dev: "Device") -> None:
    """Return once the station has an IP address, retrying with growing pauses.

    `dev.status` says "wifi" meanwhile, for the status LED.
    """
    pause_ms = 1000
    while not hardware.wifi_connected():
        dev.status = "wifi"
        print("wifi: joining", ssid)
        hardware.wifi_begin(ssid, password)
        waited = 0
        while waited < 15000 and not hardware.wifi_connected():
            st = hardware.wifi_status()
            if st == hardware.STAT_WRONG_PASSWORD:
                print("wifi: wrong password for", ssid)
                break
            if st == hardware.STAT_NO_AP_FOUND:
                print("wifi: no network named", ssid, "in range")
                break
            await asyncio.sleep_ms(250)
            waited += 250
        if hardware.wifi_connected():
            break
        hardware.wifi_reset()
        print("wifi: retrying in", pause_ms // 1000, "s")
        await asyncio.sleep_ms(pause_ms)
        pause_ms = min(pause_ms * 2, 60000)
    print("wifi: connected, rssi", hardware.wifi_rssi())
