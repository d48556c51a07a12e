"""Text made safe to show on a terminal.

Whatever the command line prints may hold text from a peer (record fields,
case references, error messages) or from the database (which stores what
peers, CSV files and users typed). A terminal obeys control characters:
ESC starts a sequence that can clear the screen or move the cursor, CR and
BS overwrite what was printed, the 8-bit CSI (U+009B) acts like ESC [ on
some terminals, and bidirectional overrides reorder the text around them,
so a hostile peer could print a fake "no hit". `shown` turns each such
character into a visible escape (`\\x1b`, `\\r`, `\\u202e`); every other
character, backslashes included, is shown as it is, so ordinary text reads
as typed. `json_line` does the same for `--json` output with JSON's own
`\\uXXXX` escapes, so the decoded values are unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Characters that must never reach a terminal raw: C0 controls (TAB and LF
#: too: a field printed on a line must stay on that line), DEL, the C1
#: controls, the bidirectional marks, embeddings, overrides and isolates, the
#: line and paragraph separators, and unpaired surrogates (bytes of a file
#: name that were not UTF-8).
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_ESCAPED_BYTES = range(0xDC80, 0xDD00)  # how `surrogateescape` carries bytes 0x80-0xFF


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if code in _ESCAPED_BYTES:
        return f"\\x{code - 0xDC00:02x}"  # the byte as the file name holds it
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: object) -> str:
    """`value` as text that is safe to print on a terminal line.

    Every control character, bidirectional control, line or paragraph
    separator and unpaired surrogate becomes a visible escape such as
    `\\x1b`, `\\r`, `\\n`, `\\x9b` or `\\u202e`; nothing else changes.
    """
    return UNSAFE.sub(_escape, str(value))


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_line(obj: Any) -> str:
    """`obj` as one line of JSON holding no character that `shown` would escape.

    Non-ASCII text stays readable (`ensure_ascii=False`), but the characters
    JSON itself leaves raw (DEL, C1 controls, bidirectional controls, U+2028,
    U+2029, unpaired surrogates) are written as `\\uXXXX` escapes: they can
    only occur inside JSON strings, so the line decodes to the same values.
    """
    return UNSAFE.sub(_json_escape, json.dumps(obj, ensure_ascii=False, default=str))
