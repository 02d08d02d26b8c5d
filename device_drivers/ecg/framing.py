"""Whole ECG files out of a serial byte stream, without I/O.

Some carts send the 12-lead file over RS-232 instead of writing it to a share or a
stick: the same bytes the file would hold, one file after another, with nothing around
them. These framers cut that stream back into files, so a file that came over a cable is
recorded and decoded exactly like one read from a folder. DICOM is not sent this way
(ecg-dicom reads folders only).

Like the monitors' framers, each is fed whatever the port delivered and returns the
files completed so far; `pending` is what it holds of an unfinished file, `dropped`
what it threw away looking for the start of one.
"""

from __future__ import annotations

import binascii

# A 12-lead file is tens or hundreds of KiB; a "file" longer than this is a wrong length
# field or a stream without its end tag, not an ECG. The folder transport has the same cap.
MAX_FILE_BYTES = 64 * 1024 * 1024

# SCP-ECG (EN 1064 §5.3): CRC-CCITT (2 bytes), record length (uint32 LE, the whole
# record), then section 0 whose 16-byte header is CRC (2), section id (uint16 LE, 0),
# section length (uint32 LE), versions and 6 reserved bytes, followed by one 10-byte
# pointer per section id (0..1023, manufacturers' ids included).
_SCP_RECORD_HEADER = 6
_SCP_SECTION_HEADER = 16
_SCP_MIN_RECORD = _SCP_RECORD_HEADER + _SCP_SECTION_HEADER
_SCP_CHECKED = _SCP_RECORD_HEADER + 8  # through section 0's id and length
_SCP_MAX_SECTION_0 = _SCP_SECTION_HEADER + 10 * 1024

# What may follow an element name in a start tag: whitespace, '>' or '/>'.
_AFTER_TAG_NAME = frozenset(b" \t\r\n>/")


class _FileStream:
    """What a framer holds between feeds: the bytes of a file not yet complete
    (`pending`, a file at most `max_bytes` long) and a count of the bytes it `dropped`."""

    def __init__(self, max_bytes: int = MAX_FILE_BYTES) -> None:
        self._max = max_bytes
        self._buffer = bytearray()
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)


class ScpFramer(_FileStream):
    """SCP-ECG records, each `record length` bytes from its first byte.

    A record starts where the length field is one a record can have (from the record
    and section 0 headers up to MAX_FILE_BYTES), section 0 follows with a length that
    fits, and section 0's own CRC (over its bytes from byte 2) matches. Anywhere else
    the stream is not at a record start (line noise, a record cut off by a replug):
    bytes are dropped one at a time until such a header comes by. Zeros and repeated
    bytes pass the length checks easily; the CRC is what keeps garbage from swallowing
    the next real record.
    """

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        records: list[bytes] = []
        start = 0
        while True:
            length = self._record_length(start)
            if length == 0:
                break  # too few bytes to tell yet
            if length < 0:
                start += 1
                self.dropped += 1
                continue
            if len(self._buffer) - start < length:
                break
            records.append(bytes(self._buffer[start : start + length]))
            start += length
        del self._buffer[:start]
        return records

    def _record_length(self, start: int) -> int:
        """The length of the record starting at `start`; -1 when none starts there, 0
        when the bytes to tell have not all arrived."""
        view = self._buffer
        available = len(view) - start
        if available < _SCP_CHECKED:
            return 0
        length = int.from_bytes(view[start + 2 : start + 6], "little")
        if not _SCP_MIN_RECORD <= length <= self._max:
            return -1
        section_id = int.from_bytes(view[start + 8 : start + 10], "little")
        section_length = int.from_bytes(view[start + 10 : start + 14], "little")
        if section_id != 0:
            return -1
        limit = min(length - _SCP_RECORD_HEADER, _SCP_MAX_SECTION_0)
        if not _SCP_SECTION_HEADER <= section_length <= limit:
            return -1
        if available < _SCP_RECORD_HEADER + section_length:
            return 0
        section = start + _SCP_RECORD_HEADER
        crc = int.from_bytes(view[section : section + 2], "little")
        # CRC-16/CCITT-FALSE: binascii's CRC-HQX started at 0xFFFF.
        if binascii.crc_hqx(view[section + 2 : section + section_length], 0xFFFF) != crc:
            return -1
        return length


class XmlFramer(_FileStream):
    """XML documents ending with `end_tag` (aECG `</AnnotatedECG>`, Philips
    `</restingecgdata>`), each from its `<?xml` declaration (or, without one, its root
    start tag) through the end tag.

    Bytes before a document are dropped. A document that never ends — a second
    declaration or root start tag comes first (the cart was reset mid-file), or it grows
    past `max_bytes` — is still handed on as a frame, so its bytes reach quarantine
    instead of vanishing.
    """

    def __init__(self, end_tag: bytes, max_bytes: int = MAX_FILE_BYTES) -> None:
        if not (end_tag.startswith(b"</") and end_tag.endswith(b">")):
            raise ValueError(f"{end_tag!r} is not an XML end tag like b'</AnnotatedECG>'")
        super().__init__(max_bytes)
        self._end = end_tag
        self._root = b"<" + end_tag[2:-1]
        self._in_document = False
        self._root_at: int | None = None  # where this document's root start tag is
        self._scanned = 0  # buffer bytes already searched for the end or a restart

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        documents: list[bytes] = []
        while True:
            if not self._in_document and not self._find_start():
                break
            document = self._take_document()
            if document is None:
                break
            documents.append(document)
        return documents

    def _find_start(self) -> bool:
        """Drop bytes up to the next document start; False when none is there yet."""
        starts = [i for i in (self._buffer.find(b"<?xml"), self._root_start(0)) if i >= 0]
        if not starts:
            # Keep a tail that may be the beginning of a start marker split by the read.
            keep = max(len(b"<?xml"), len(self._root) + 1) - 1
            cut = max(0, len(self._buffer) - keep)
            self.dropped += cut
            del self._buffer[:cut]
            return False
        start = min(starts)
        self.dropped += start
        del self._buffer[:start]
        self._in_document = True
        self._root_at = 0 if self._buffer.startswith(self._root) else None
        self._scanned = 1
        return True

    def _take_document(self) -> bytes | None:
        """The document at the buffer's start once it has ended (or cannot), else None."""
        begin = max(1, self._scanned - len(self._end))
        end = self._buffer.find(self._end, begin)
        restart = self._restart(begin, end)
        if restart is not None:
            return self._cut(restart)
        if end >= 0:
            return self._cut(end + len(self._end))
        if len(self._buffer) > self._max:
            return self._cut(len(self._buffer))
        self._scanned = len(self._buffer)
        return None

    def _restart(self, begin: int, end: int) -> int | None:
        """Where a new document starts before this one's end tag (None: it does not)."""
        limit = end if end >= 0 else len(self._buffer)
        declaration = self._buffer.find(b"<?xml", begin, limit)
        if self._root_at is None:
            root = self._root_start(begin, limit)
            if root >= 0 and (declaration < 0 or root < declaration):
                self._root_at = root
        root_again = -1
        if self._root_at is not None:
            root_again = self._root_start(max(begin, self._root_at + 1), limit)
        found = [i for i in (declaration, root_again) if i >= 0]
        return min(found) if found else None

    def _root_start(self, begin: int, limit: int | None = None) -> int:
        """The root start tag (`<AnnotatedECG` then a space, `>` or `/`) from `begin`."""
        stop = len(self._buffer) if limit is None else limit
        at = self._buffer.find(self._root, begin, stop)
        while at >= 0:
            after = at + len(self._root)
            if after >= len(self._buffer):
                return -1  # cannot tell yet; seen again on the next feed
            if self._buffer[after] in _AFTER_TAG_NAME:
                return at
            at = self._buffer.find(self._root, at + 1, stop)
        return -1

    def _cut(self, length: int) -> bytes:
        document = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._in_document = False
        self._root_at = None
        self._scanned = 0
        return document
