"""The frames a USB ID-card reader's security module speaks (GA/T 467-2019, 居民身份证
验证安全控制模块接口技术规范, chapter 7 "业务终端接口"; GA 467-2013 before it): built,
cut from a byte stream and decoded, as hostile input. Pure: no I/O (the serial edge is
edge_agent.id_card_reader).

Most USB readers of the second-generation card carry the module (SAM_A) behind a
USB-serial bridge: 115200 bit/s by default (57600, 38400, 19200 or 9600 settable),
8 data bits, no parity, 1 stop bit. The host sends a command frame, the module answers
with one frame:

    command:  AA AA AA 96 69 | Len1 Len2 | CMD | Para | Data ... | CHK_SUM
    answer:   AA AA AA 96 69 | Len1 Len2 | SW1 | SW2 | SW3 | Data ... | CHK_SUM

- the preamble AA AA AA 96 69 (three bytes for frame sync, two marking the start);
- Len1 Len2: the length, high byte first, of everything after it (CMD, Para, Data and
  CHK_SUM; or SW1, SW2, SW3, Data and CHK_SUM);
- CHK_SUM: the XOR of every byte of the frame but the preamble and itself;
- SW1 SW2: what the card answered (relayed), SW3: the module's own status.

Commands used here: find a card (寻找证/卡) 20 01, select it (选取证/卡) 20 02, read its
fixed information (读基本信息) 30 01. Statuses (SW3): 90 done, 9F a card found (its data:
4 bytes of the card's management number), 80 no card found, 81 selecting failed, 41
reading failed; 10 / 11 the module got a bad checksum / length, 21 a bad command, 24
unknown error, 31 / 32 / 33 card and module did not authenticate each other or the
information did not verify, 40 a card of an unknown type, 47 no random number, 60 the
module's self-check failed, 66 the module is not authorised, 91 no such content on the
card. The answer to 30 01 (length 05 08): 00 00 90, the text's length (01 00) and the
photo's (04 00), both high byte first, then the 256 bytes of text (edge_agent.id_card
reads them) and the 1024-byte photo (a WLT file, which this module drops).

Where the facts were found (the standard is sold; public copies of its frame chapter):
"公安部身份证阅读器模块SAM通讯协议" (blog.csdn.net/zhangbijun1230/article/details/
85242964: line settings, frame formats, length and checksum rules, the command table),
"身份证阅读器通信协议" (softs.im: the commands with their parameters, the status table),
the status texts as the reader makers' SDKs return them (sdtapi's SDT_* functions, in
public code), a maker's page with the read answer's header AA AA AA 96 69 05 08 00 00 90
01 00 04 00 (eastcoms.com, "身份证阅读器SAM模块身份证信息解析说明"), and answers logged
by public reader code: 00 04 00 00 90 94 (status fine), 00 08 00 00 9F 00 00 00 00 97
(card found), 00 04 00 00 80 84 (no card), 00 0C 00 00 90 followed by eight zeros and 9C
(card selected). Every one of those checks with the checksum rule above; the tests
replay them byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

from edge_agent.id_card import TEXT_BYTES, IdCardError

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
BAUD_RATES = (115200, 57600, 38400, 19200, 9600)  # the module's; 115200 its default
# No answer to the commands sent here is longer than the read's (1288: 3 status bytes,
# 4 of lengths, 256 of text, 1024 of photo, the checksum); a module with fingerprints
# answers 30 10 with 1024 more. Anything longer is not believed.
MAX_LENGTH = 2400
MIN_ANSWER_LENGTH = 4  # SW1 SW2 SW3 CHK_SUM
PHOTO_BYTES = 1024

FIND = (0x20, 0x01)
SELECT = (0x20, 0x02)
READ_BASE = (0x30, 0x01)

DONE = 0x90
FOUND = 0x9F
NO_CARD = 0x80
SELECT_FAILED = 0x81
READ_FAILED = 0x41

STATUS_TEXT = {
    0x90: "done",
    0x9F: "card found",
    0x80: "no card found",
    0x81: "selecting the card failed",
    0x41: "reading the card failed",
    0x10: "the module got a bad checksum",
    0x11: "the module got a bad length",
    0x21: "the module got a bad command",
    0x23: "the module refused the command (not permitted)",
    0x24: "the module had an unknown error",
    0x31: "the card did not authenticate the module",
    0x32: "the module did not authenticate the card",
    0x33: "the card's information did not verify",
    0x37: "the fingerprint did not verify",
    0x3F: "the information has a bad length",
    0x40: "a card of an unknown type",
    0x47: "the module got no random number",
    0x60: "the module's self-check failed",
    0x66: "the module is not authorised",
    0x91: "no such content on the card",
}


class SamFrameError(IdCardError):
    """Bytes that are no frame of the module's (checksum, length); never quoting them."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One frame from the module: the card's status words, the module's, the data."""

    sw1: int
    sw2: int
    sw3: int
    data: bytes


def checksum(body: bytes) -> int:
    """The XOR of `body`: a frame's bytes after the preamble, before the checksum."""
    return reduce(lambda a, b: a ^ b, body, 0)


def _framed(body: bytes) -> bytes:
    length = len(body) + 1
    if length > MAX_LENGTH:
        raise ValueError(f"SAM frame: {length} bytes after the length, at most {MAX_LENGTH}")
    head = length.to_bytes(2, "big") + body
    return PREAMBLE + head + bytes([checksum(head)])


def command(cmd: int, para: int, data: bytes = b"") -> bytes:
    """The frame that sends command `cmd` with parameter `para` to the module."""
    return _framed(bytes([cmd, para]) + data)


def answer(sw1: int, sw2: int, sw3: int, data: bytes = b"") -> bytes:
    """The frame a module answers with (a simulated module's side; tests)."""
    return _framed(bytes([sw1, sw2, sw3]) + data)


def decode_answer(frame: bytes) -> Answer:
    """A whole answer frame (preamble to checksum) read; SamFrameError when it is not."""
    if not frame.startswith(PREAMBLE) or len(frame) < len(PREAMBLE) + 2:
        raise SamFrameError("ID card reader: a frame without the preamble AA AA AA 96 69")
    length = int.from_bytes(frame[5:7], "big")
    if not MIN_ANSWER_LENGTH <= length <= MAX_LENGTH:
        raise SamFrameError(
            f"ID card reader: a frame length of {length}, not {MIN_ANSWER_LENGTH} to {MAX_LENGTH}"
        )
    if len(frame) != 7 + length:
        raise SamFrameError(
            f"ID card reader: a frame of {len(frame)} bytes where its length says {7 + length}"
        )
    if checksum(frame[5:-1]) != frame[-1]:
        raise SamFrameError("ID card reader: a frame whose checksum does not match")
    return Answer(frame[7], frame[8], frame[9], frame[10:-1])


def described(sw3: int) -> str:
    """What the module's status says, for a log line or a refusal."""
    return f"{STATUS_TEXT.get(sw3, 'an unknown status')} (SW3 {sw3:02X})"


def base_text(read: Answer) -> bytes:
    """The card's 256 bytes of text from the answer to 30 01 (the photo dropped);
    SamFrameError when the answer is not a successful read of that shape."""
    if read.sw3 != DONE:
        raise SamFrameError(f"ID card reader: reading the card: {described(read.sw3)}")
    data = read.data
    if len(data) < 4:
        raise SamFrameError("ID card reader: a read answer without its two lengths")
    text_len = int.from_bytes(data[0:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    if text_len != TEXT_BYTES or photo_len > PHOTO_BYTES:
        raise SamFrameError(
            f"ID card reader: a read answer with {text_len} bytes of text and {photo_len} of"
            f" photo, not {TEXT_BYTES} and at most {PHOTO_BYTES}"
        )
    if len(data) != 4 + text_len + photo_len:
        raise SamFrameError("ID card reader: a read answer whose lengths do not add up")
    return data[4 : 4 + text_len]


class AnswerFramer:
    """Cuts the module's answers out of a byte stream: everything before a preamble is
    dropped, a length out of bounds drops that preamble and the search goes on, a frame
    is whole once its length is in. Nothing buffered exceeds one frame's bytes. No I/O.
    A cut frame is not checked: decode_answer does that."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.dropped = 0  # bytes thrown away while looking for a frame

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        while True:
            start = self._buf.find(PREAMBLE)
            if start < 0:
                keep = _partial_preamble(self._buf)
                self.dropped += len(self._buf) - keep
                del self._buf[: len(self._buf) - keep]
                return frames
            if start:
                self.dropped += start
                del self._buf[:start]
            if len(self._buf) < 7:
                return frames
            length = int.from_bytes(self._buf[5:7], "big")
            if not MIN_ANSWER_LENGTH <= length <= MAX_LENGTH:
                self.dropped += len(PREAMBLE)
                del self._buf[: len(PREAMBLE)]
                continue
            if len(self._buf) < 7 + length:
                return frames
            frames.append(bytes(self._buf[: 7 + length]))
            del self._buf[: 7 + length]

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet whole."""
        return len(self._buf)

    def clear(self) -> None:
        """Forget a partial frame (after a timeout: the next answer starts afresh)."""
        self.dropped += len(self._buf)
        self._buf.clear()


def _partial_preamble(buf: bytearray) -> int:
    """How many bytes at the end of `buf` could be the start of a preamble."""
    for keep in range(min(len(PREAMBLE) - 1, len(buf)), 0, -1):
        if buf.endswith(PREAMBLE[:keep]):
            return keep
    return 0
