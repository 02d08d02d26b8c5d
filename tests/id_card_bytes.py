"""Bytes of an ID card and of its reader's security module, written out as the public
sources give them (edge_agent/id_card.py and edge_agent/id_card_sam.py name them), not
made by the code under test: what the tests feed the decoders and the simulated reader.

The card is made up: GB 11643-1999's worked example number (a woman born 1949-12-31)
and a made-up name, address and authority. A public capture of a real card's text
(edge_agent/id_card.py names it) fixed the layout; its person's fields are not copied.
"""

from __future__ import annotations

from functools import reduce


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


SPACES = "20 00 "  # one UCS-2 space, the padding of every field

# The card's 256 bytes of text, field by field (GA/T 490-2019), UCS-2 little-endian.
NAME = "20 5F 09 4E " + SPACES * 13  # 张三, 30 bytes
SEX_FEMALE = "32 00 "  # "2" (GB/T 2261.1)
SEX_MALE = "31 00 "  # "1"
ETHNIC = "30 00 31 00 "  # "01" (GB/T 3304)
BIRTH = "31 00 39 00 34 00 39 00 31 00 32 00 33 00 31 00 "  # 19491231
ADDRESS = (  # 北京市朝阳区某街1号, 70 bytes
    "17 53 AC 4E 02 5E 1D 67 33 96 3A 53 D0 67 57 88 31 00 F7 53 " + SPACES * 25
)
NUMBER = (  # 11010519491231002X
    "31 00 31 00 30 00 31 00 30 00 35 00 31 00 39 00 34 00 39 00 31 00 32 00 33 00 31 00"
    " 30 00 30 00 32 00 58 00 "
)
AUTHORITY = "17 53 AC 4E 02 5E 6C 51 89 5B 40 5C 1D 67 33 96 06 52 40 5C " + SPACES * 5
VALID_FROM = "32 00 30 00 31 00 30 00 30 00 31 00 30 00 31 00 "  # 20100101
LONG_TERM = "7F 95 1F 67 " + SPACES * 6  # 长期
RESERVED = SPACES * 18

# As the published capture's card: valid ten years, 2011-03-03 to 2021-03-03.
CAPTURE_FROM = "32 00 30 00 31 00 31 00 30 00 33 00 30 00 33 00 "  # 20110303
CAPTURE_UNTIL = "32 00 30 00 32 00 31 00 30 00 33 00 30 00 33 00 "  # 20210303


def card_text(
    *,
    name: str = NAME,
    sex: str = SEX_FEMALE,
    number: str = NUMBER,
    valid_from: str = VALID_FROM,
    valid_until: str = LONG_TERM,
    reserved: str = RESERVED,
) -> bytes:
    return hx(
        name
        + sex
        + ETHNIC
        + BIRTH
        + ADDRESS
        + number
        + AUTHORITY
        + valid_from
        + valid_until
        + reserved
    )


TEXT = card_text()
EXPIRED_TEXT = card_text(valid_from=CAPTURE_FROM, valid_until=CAPTURE_UNTIL)

# Frames of GA/T 467-2019 §7, as the public sources print them.
FIND = hx("AA AA AA 96 69 00 03 20 01 22")
SELECT = hx("AA AA AA 96 69 00 03 20 02 21")
READ = hx("AA AA AA 96 69 00 03 30 01 32")
STATUS_OK = hx("AA AA AA 96 69 00 04 00 00 90 94")
FOUND = hx("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97")
NO_CARD = hx("AA AA AA 96 69 00 04 00 00 80 84")
SELECTED = hx("AA AA AA 96 69 00 0C 00 00 90 00 00 00 00 00 00 00 00 9C")
READ_HEADER = hx("AA AA AA 96 69 05 08 00 00 90 01 00 04 00")
PHOTO = bytes(range(256)) * 4  # 1024 bytes standing in for the WLT photo


def xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def read_answer(text: bytes = TEXT) -> bytes:
    """The module's answer to 30 01: the header as printed, text, photo, the checksum
    (the XOR of all after the preamble)."""
    body = READ_HEADER + text + PHOTO
    return body + bytes([xor(body[5:])])
