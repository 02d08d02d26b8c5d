"""The reader's security-module frames (edge_agent/id_card_sam.py, GA/T 467-2019 §7):
built, cut from a stream and decoded, against the bytes the public sources print
(tests/id_card_bytes.py), and as hostile input."""

from __future__ import annotations

import id_card_bytes as b
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent import id_card_sam as sam
from edge_agent.id_card import IdCardError


@pytest.mark.parametrize(
    ("built", "printed"),
    [
        (sam.command(*sam.FIND), b.FIND),
        (sam.command(*sam.SELECT), b.SELECT),
        (sam.command(*sam.READ_BASE), b.READ),
        (sam.answer(0, 0, sam.DONE), b.STATUS_OK),
        (sam.answer(0, 0, sam.FOUND, bytes(4)), b.FOUND),
        (sam.answer(0, 0, sam.NO_CARD), b.NO_CARD),
        (sam.answer(0, 0, sam.DONE, bytes(8)), b.SELECTED),
    ],
)
def test_frames_are_the_bytes_the_sources_print(built: bytes, printed: bytes) -> None:
    assert built == printed


@pytest.mark.parametrize(
    ("frame", "sw3", "data"),
    [
        (b.STATUS_OK, 0x90, b""),
        (b.FOUND, 0x9F, bytes(4)),
        (b.NO_CARD, 0x80, b""),
        (b.SELECTED, 0x90, bytes(8)),
    ],
)
def test_printed_answers_decode(frame: bytes, sw3: int, data: bytes) -> None:
    assert sam.decode_answer(frame) == sam.Answer(0, 0, sw3, data)


def test_the_read_answer_gives_the_cards_text_and_drops_the_photo() -> None:
    read = sam.decode_answer(b.read_answer())
    assert (read.sw3, len(read.data)) == (0x90, 4 + 256 + 1024)
    assert sam.base_text(read) == b.TEXT
    assert sam.answer(0, 0, 0x90, b.hx("01 00 04 00") + b.TEXT + b.PHOTO) == b.read_answer()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b.NO_CARD[:-1] + b"\x85", "checksum"),
        (b.NO_CARD[:-1], "where its length says"),
        (b"\xaa\xaa\xaa\x96\x68" + b.NO_CARD[5:], "preamble"),
        (b.hx("AA AA AA 96 69 00 02 00 02"), "frame length of 2"),
        (b.hx("AA AA AA 96 69 FF FF"), "frame length of 65535"),
        (b"", "preamble"),
    ],
)
def test_a_bad_frame_is_one_error(frame: bytes, message: str) -> None:
    with pytest.raises(sam.SamFrameError, match=message) as bad:
        sam.decode_answer(frame)
    assert "\n" not in str(bad.value)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (sam.answer(0, 0, sam.READ_FAILED), r"reading the card failed \(SW3 41\)"),
        (sam.answer(0, 0, sam.DONE, b.hx("01 00")), "without its two lengths"),
        (sam.answer(0, 0, sam.DONE, b.hx("00 FF 04 00") + bytes(255 + 1024)), "255 bytes of text"),
        (sam.answer(0, 0, sam.DONE, b.hx("01 00 04 00") + b.TEXT), "do not add up"),
    ],
)
def test_a_read_answer_of_another_shape_is_refused(answer: bytes, message: str) -> None:
    with pytest.raises(sam.SamFrameError, match=message) as bad:
        sam.base_text(sam.decode_answer(answer))
    assert "张" not in str(bad.value)


STREAM = [b.STATUS_OK, b.FOUND, b.SELECTED, b.read_answer(), b.NO_CARD]


def test_the_framer_cuts_the_same_frames_however_the_stream_is_split() -> None:
    whole = b"".join(STREAM)
    for cut in range(len(whole) + 1):
        framer = sam.AnswerFramer()
        assert framer.feed(whole[:cut]) + framer.feed(whole[cut:]) == STREAM
        assert framer.dropped == 0


def test_the_framer_skips_noise_and_a_broken_preamble() -> None:
    # "AA 00 AA AA 96 69 00 0C ..." as a public reader log shows a select answer arriving
    framer = sam.AnswerFramer()
    glitch = b.hx("AA 00") + b.SELECTED[2:]
    assert framer.feed(b"\x00\x13" + glitch + b.NO_CARD) == [b.NO_CARD]
    assert framer.dropped == 2 + len(glitch)
    bogus_length = b.hx("AA AA AA 96 69 7F FF")
    assert framer.feed(bogus_length + b.FOUND) == [b.FOUND]


_BYTE = st.integers(0, 255)


@given(sw1=_BYTE, sw2=_BYTE, sw3=_BYTE, data=st.binary(max_size=sam.MAX_LENGTH - 4))
def test_what_is_decoded_is_what_was_framed(sw1: int, sw2: int, sw3: int, data: bytes) -> None:
    frame = sam.answer(sw1, sw2, sw3, data)
    assert sam.decode_answer(frame) == sam.Answer(sw1, sw2, sw3, data)
    assert sam.AnswerFramer().feed(frame) == [frame]


@given(data=st.binary(max_size=300), at=st.integers(0), flip=st.integers(1, 255))
def test_any_one_byte_changed_is_caught(data: bytes, at: int, flip: int) -> None:
    frame = bytearray(sam.answer(0, 0, sam.DONE, data))
    frame[at % len(frame)] ^= flip
    with pytest.raises(IdCardError):
        sam.decode_answer(bytes(frame))


@given(data=st.binary(max_size=300), cut=st.integers(0), extra=st.binary(min_size=1, max_size=9))
def test_a_cut_or_lengthened_frame_is_caught(data: bytes, cut: int, extra: bytes) -> None:
    frame = sam.answer(0, 0, sam.DONE, data)
    with pytest.raises(IdCardError):
        sam.decode_answer(frame[: cut % len(frame)])
    with pytest.raises(IdCardError):
        sam.decode_answer(frame + extra)


@given(st.lists(st.binary(max_size=700), max_size=8))
def test_any_bytes_give_frames_or_nothing_never_another_exception(chunks: list[bytes]) -> None:
    framer = sam.AnswerFramer()
    for chunk in chunks:
        for frame in framer.feed(chunk):
            assert frame.startswith(sam.PREAMBLE) and len(frame) <= 7 + sam.MAX_LENGTH
            try:
                read = sam.decode_answer(frame)
            except IdCardError as exc:
                assert "\n" not in str(exc)
                continue
            try:
                text = sam.base_text(read)
            except IdCardError:
                continue
            assert len(text) == 256
    assert framer.buffered <= 7 + sam.MAX_LENGTH
