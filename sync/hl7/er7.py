"""HL7 v2 ER7 ("pipe and hat") encoding: delimiters, escapes, splitting.

hl7apy builds and validates our messages; this module does the small things it does not:
escaping free text before it goes into a field, and reading fields back quickly and
without surprises (hl7apy keeps escape sequences as they are and raises a zoo of
exception types on bad input). HL7 v2.6 Ch. 2.5 (message construction rules),
2.7 (use of escape sequences in text fields).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEGMENT_SEPARATOR = "\r"  # Ch. 2.5.1: segments end with a carriage return


@dataclass(frozen=True, slots=True)
class Encoding:
    """The delimiters a message declares in MSH-1 and MSH-2 (Ch. 2.5.4)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def msh2(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT = Encoding()


def escape(text: str, enc: Encoding = DEFAULT) -> str:
    """Free text made safe for one component (Ch. 2.7.1 escape sequences).

    Line breaks and other control characters would end a segment or confuse a reader:
    they become `\\X0D\\`-style hex escapes (Ch. 2.7.5) instead of being dropped.
    """
    e = enc.escape
    out: list[str] = []
    for ch in text:
        if ch == e:
            out.append(f"{e}E{e}")
        elif ch == enc.field:
            out.append(f"{e}F{e}")
        elif ch == enc.component:
            out.append(f"{e}S{e}")
        elif ch == enc.subcomponent:
            out.append(f"{e}T{e}")
        elif ch == enc.repetition:
            out.append(f"{e}R{e}")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"{e}X{ord(ch):02X}{e}")
        else:
            out.append(ch)
    return "".join(out)


def unescape(text: str, enc: Encoding = DEFAULT) -> str:
    """The text an escaped component stands for.

    Formatting escapes (`\\H\\`, `\\N\\`, `\\.br\\`...) carry no characters of the value
    and are dropped; a lone escape character with no closing one is kept literally, so
    reading never fails.
    """
    e = enc.escape
    if e not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != e:
            out.append(ch)
            i += 1
            continue
        end = text.find(e, i + 1)
        if end < 0:
            out.append(text[i:])
            break
        code = text[i + 1 : end]
        i = end + 1
        if code == "F":
            out.append(enc.field)
        elif code == "S":
            out.append(enc.component)
        elif code == "T":
            out.append(enc.subcomponent)
        elif code == "R":
            out.append(enc.repetition)
        elif code == "E":
            out.append(e)
        elif code.startswith("X") and _HEX.fullmatch(code[1:]):
            hexdigits = code[1:]
            out.append(bytes.fromhex(hexdigits).decode("latin-1"))
        # else: highlighting, formatting or character-set escapes (Ch. 2.7.2-2.7.6).
    return "".join(out)


_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


def join(parts: tuple[str, ...] | list[str], sep: str) -> str:
    """Parts joined with `sep`, trailing empty parts left out (Ch. 2.5.3: no trailing delimiters)."""
    items = list(parts)
    while items and not items[-1]:
        items.pop()
    return sep.join(items)


def split_segments(text: str) -> list[str]:
    """Segments of a message; CR, LF and CRLF all end a segment, empty lines are skipped.

    HL7 says CR only; senders that went through a text editor or a JSON string use LF,
    and a trailing separator is common. Neither is worth refusing a message for.
    """
    return [s for s in re.split(r"\r\n|\r|\n", text) if s.strip()]


def read_encoding(msh: str) -> Encoding | None:
    """Delimiters from an MSH segment's first 8 characters, None if they are unusable."""
    if len(msh) < 8 or not msh.startswith("MSH"):
        return None
    field = msh[3]
    chars = msh[4:8]
    if msh[8:9] not in ("", field):
        return None  # MSH-2 is exactly four characters (Ch. 2.14.9.2)
    delimiters = field + chars
    if len(set(delimiters)) != 5 or any(c.isalnum() or c in "\r\n " for c in delimiters):
        return None
    return Encoding(
        field=field, component=chars[0], repetition=chars[1], escape=chars[2], subcomponent=chars[3]
    )


def segment_fields(segment: str, enc: Encoding) -> list[str]:
    """Fields of a segment indexed by their HL7 sequence number: `fields[3]` is SEG-3.

    For MSH, `fields[1]` is the field separator itself and `fields[2]` the encoding
    characters, so MSH-n is `fields[n]` as for every other segment (Ch. 2.14.9).
    """
    parts = segment.split(enc.field)
    if parts[0] == "MSH":
        return ["MSH", enc.field, *parts[1:]]
    return parts


def field(fields: list[str], number: int) -> str:
    """SEG-n as raw ER7 text, "" when absent."""
    return fields[number] if number < len(fields) else ""


def component(value: str, number: int, enc: Encoding) -> str:
    """Component n (1-based) of the first repetition of a raw field, unescaped."""
    first = value.split(enc.repetition, 1)[0]
    parts = first.split(enc.component)
    if number > len(parts):
        return ""
    return unescape(parts[number - 1].split(enc.subcomponent, 1)[0], enc)


def one_line(text: str) -> str:
    """Free text (a crew's complaint, a cart's statement) as one line: control characters
    and runs of blanks (any Unicode white space: a no-break space, an ideographic space)
    become one space, none at either end. For fields that are text, not data."""
    cleaned = "".join(" " if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in text)
    return " ".join(cleaned.split())


def escape_fit(text: str, limit: int, enc: Encoding = DEFAULT) -> str:
    """`text` escaped, cut so that the escaped form is at most `limit` characters (a field
    with a length limit: an escape sequence is never cut in half)."""
    escaped = escape(text[:limit], enc)
    while len(escaped) > limit and text:
        text = text[: min(len(text), limit) - 1]
        escaped = escape(text, enc)
    return escaped
