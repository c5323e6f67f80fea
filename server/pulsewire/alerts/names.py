"""The one rule for the names people give rules and channels: plain text on one line.

A name goes into email subjects (a line break there would start a header) and onto the dashboard
(which shows it as text; a name that tries markup is refused as well, so it shows nowhere).
"""

from __future__ import annotations

import re

MAX_NAME = 100
# C0, DEL, C1, and the line and paragraph separators some readers take for a new line.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The start of an HTML tag, end tag, comment or declaration; "temp < 5" stays a fine name.
_MARKUP = re.compile(r"<[A-Za-z/!?]")


def name_problem(value: object) -> str | None:
    """What is wrong with a name, as the `detail` of a refusal (field first), or None."""
    if not isinstance(value, str) or not value.strip():  # a blank name would show as nothing
        return f"name: required text of 1 to {MAX_NAME} characters"
    if len(value) > MAX_NAME:
        return f"name: {len(value)} characters, at most {MAX_NAME}"
    if CONTROL.search(value):
        return "name: control characters (line breaks, tabs, ...) are not allowed"
    if _MARKUP.search(value):
        return "name: markup ('<' followed by a letter, '/', '!' or '?') is not allowed"
    return None


def has_control(text: str) -> bool:
    return CONTROL.search(text) is not None
