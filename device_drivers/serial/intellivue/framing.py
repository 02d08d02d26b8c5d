"""IntelliVue MIB/RS-232 framing: C0 | header | user data | FCS | C1 (docs/protocols/intellivue.md).

The Data Export Interface Programming Guide ("Protocol Stack: Serial" / "Transport
Layer") wraps every user-data message in a frame:

    C0 | 11 01 len(BE u16) | user data (len bytes) | FCS (2 bytes, LSB first) | C1

- Transparency: inside the frame (header, user data *and FCS*) each 0xC0, 0xC1 or 0x7D
  travels as 0x7D followed by the byte XOR 0x20. The pair 7D C1 aborts the frame.
- FCS: the PPP 16-bit frame check sequence of RFC 1662 appendix C (initial 0xFFFF,
  reflected polynomial 0x8408, ones-complemented, sent least-significant byte first),
  over header + user data before escaping. Running the same register over header + data
  + received FCS leaves the residue 0xF0B8.

`FrameReader` cuts frames and undoes the transparency but checks nothing else: what it
emits is the unescaped frame content between C0 and C1 (header + user data + FCS), and
`unframe` (called by the decoder and the conversation) checks header, length and FCS, so
a damaged frame is still recorded and then quarantined with the reason and byte offset.
"""

from __future__ import annotations

from edge_agent.model import DecodeError

START = 0xC0  # BOF
END = 0xC1  # EOF
ESCAPE = 0x7D  # control escape; the next byte is XORed with 0x20
_FLIP = 0x20
PROTOCOL_ID = 0x11  # header byte 0: protocol id
MESSAGE_TYPE = 0x01  # header byte 1: message type (data export message)
HEADER_LEN = 4
FCS_LEN = 2
FCS_INIT = 0xFFFF
FCS_GOOD = 0xF0B8  # RFC 1662 C.2: the register after data + its own FCS
# Our association request asks for at most 1364-byte messages (the guide's LAN maximum),
# so an unescaped frame this long is line noise or two frames glued by a lost C1.
MAX_FRAME = 4096

_SPECIAL = frozenset((START, END, ESCAPE))


def _table() -> tuple[int, ...]:
    # RFC 1662 C.2 builds the table from the reflected polynomial 0x8408.
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0x8408 if value & 1 else value >> 1
        table.append(value)
    return tuple(table)


_FCS_TABLE = _table()


def fcs_register(data: bytes, fcs: int = FCS_INIT) -> int:
    """The FCS register after `data`, not complemented (RFC 1662 `pppfcs16`)."""
    for byte in data:
        fcs = (fcs >> 8) ^ _FCS_TABLE[(fcs ^ byte) & 0xFF]
    return fcs


def fcs16(data: bytes) -> int:
    """The FCS to send after `data`: the ones' complement of the register.

    fcs16(b"123456789") == 0x906E, the CRC-16/X-25 check value; on the wire it goes
    least-significant byte first (6E 90).
    """
    return fcs_register(data) ^ 0xFFFF


def escape(data: bytes) -> bytes:
    """Transparency for the bytes between C0 and C1."""
    out = bytearray()
    for byte in data:
        if byte in _SPECIAL:
            out += bytes((ESCAPE, byte ^ _FLIP))
        else:
            out.append(byte)
    return bytes(out)


def encode_frame(user_data: bytes) -> bytes:
    """One wire frame for `user_data`: header, FCS and transparency over all of it.

    VSCaptureMP escapes only the user data (its sender's quirk); here the header and
    the FCS are escaped too, so a length or FCS byte equal to C0/C1/7D stays legal.
    """
    if len(user_data) > 0xFFFF:
        raise ValueError(f"user data of {len(user_data)} bytes does not fit a frame")
    body = bytes((PROTOCOL_ID, MESSAGE_TYPE)) + len(user_data).to_bytes(2, "big") + user_data
    body += fcs16(body).to_bytes(2, "little")
    return bytes((START,)) + escape(body) + bytes((END,))


def unframe(frame: bytes) -> bytes:
    """The user data of one unescaped frame (as FrameReader emits it), after checks.

    Raises DecodeError naming the first thing wrong: the header, the length field or the
    FCS, with the byte offset inside `frame`.
    """
    if len(frame) < HEADER_LEN + FCS_LEN:
        raise DecodeError(f"frame of {len(frame)} bytes is shorter than header + FCS (6 bytes)", 0)
    if frame[0] != PROTOCOL_ID:
        raise DecodeError(f"protocol id 0x{frame[0]:02x}, expected 0x11", 0)
    if frame[1] != MESSAGE_TYPE:
        raise DecodeError(f"message type 0x{frame[1]:02x}, expected 0x01", 1)
    length = int.from_bytes(frame[2:4], "big")
    have = len(frame) - HEADER_LEN - FCS_LEN
    if length != have:
        raise DecodeError(f"header says {length} bytes of user data, frame has {have}", 2)
    if fcs_register(frame) != FCS_GOOD:
        sent = int.from_bytes(frame[-2:], "little")
        wanted = fcs16(frame[:-2])
        raise DecodeError(f"FCS 0x{sent:04x}, computed 0x{wanted:04x}", len(frame) - 2)
    return frame[HEADER_LEN:-FCS_LEN]


class FrameReader:
    """Cuts IntelliVue frames out of a serial byte stream (transport.Framer).

    Emits the unescaped content of each C0 ... C1 frame (header + user data + FCS); the
    checks are `unframe`'s, so damaged frames reach the recorder and its quarantine.
    - 7D C1 (abort) drops the frame being received; nothing is emitted for it.
    - A C0 inside a frame (its C1 was lost) emits the partial frame, which the decoder
      rejects, and starts the next one.
    - Bytes outside any frame (the tail of a frame cut by opening the port mid-message,
      line noise) are emitted as one piece when the next C0 arrives, so they are kept
      for inspection instead of silently dropped; they never decode.
    - Frames and noise runs longer than `max_frame` are emitted in `max_frame` pieces,
      so memory stays bounded whatever arrives.
    The output depends only on the byte stream, not on how reads split it.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._max = max_frame
        self._frame = bytearray()
        self._noise = bytearray()
        self._in_frame = False
        self._escaped = False

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete (the decode CLI reports them)."""
        return len(self._frame) + len(self._noise)

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for byte in data:
            if not self._in_frame:
                if byte == START:
                    self._flush_noise(out)
                    self._start()
                else:
                    self._noise.append(byte)
                    if len(self._noise) >= self._max:
                        self._flush_noise(out)
                continue
            if self._escaped:
                self._escaped = False
                if byte == END:  # 7D C1: the sender aborted this frame
                    self._frame.clear()
                    self._in_frame = False
                    continue
                if byte == START:  # an escape cut short by a new frame
                    self._flush_frame(out)
                    self._start()
                    continue
                self._frame.append(byte ^ _FLIP)
            elif byte == ESCAPE:
                self._escaped = True
                continue
            elif byte == END:
                self._flush_frame(out)
                self._in_frame = False
                continue
            elif byte == START:
                self._flush_frame(out)
                self._start()
                continue
            else:
                self._frame.append(byte)
            if len(self._frame) >= self._max:
                # Too long to be ours: keep what came for quarantine, treat the rest as noise.
                self._flush_frame(out)
                self._in_frame = False
        return out

    def _start(self) -> None:
        self._frame.clear()
        self._in_frame = True
        self._escaped = False

    def _flush_frame(self, out: list[bytes]) -> None:
        if self._frame:
            out.append(bytes(self._frame))
            self._frame.clear()

    def _flush_noise(self, out: list[bytes]) -> None:
        if self._noise:
            out.append(bytes(self._noise))
            self._noise.clear()
