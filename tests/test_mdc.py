"""The MDC table: one code per reference id, codes built as partition x 65536 + term."""

from __future__ import annotations

from collections import Counter

from edge_agent import mdc


def test_no_reference_id_or_code_twice() -> None:
    refids = Counter(t.refid for t in mdc._TERMS)
    codes = Counter(t.code for t in mdc._TERMS)
    assert [r for r, n in refids.items() if n > 1] == []
    assert [c for c, n in codes.items() if n > 1] == []


def test_partitions_and_known_codes() -> None:
    # values checked against IHE PCD examples and 11073 tables (docs/protocols/mdc-nomenclature.md)
    assert mdc.code("MDC_PULS_OXIM_SAT_O2") == 150456
    assert mdc.code("MDC_PRESS_BLD_NONINV_SYS") == 150021
    assert mdc.code("MDC_DIM_MMHG") == 266016
    assert mdc.code("MDC_DIM_BEAT_PER_MIN") == 264864
    assert mdc.code("MDC_ECG_HEART_RATE") == 147842
    for term in mdc._TERMS:
        partition = term.code // 65536
        if term.refid.startswith("MDC_DIM_"):
            assert partition == mdc.PART_DIM, term
        elif term.refid.startswith("MDC_DEV_"):
            assert partition == mdc.PART_INFRA, term
        elif term.refid in ("MDC_ATTR_SAMP_RATE", "MDC_ATTR_NU_MSMT_RES"):
            # Waveform attributes carry the codes monitors' HL7 exports use (mdc.py).
            assert term.code in (0, 2327), term
        elif term.refid.startswith("MDC_ATTR_"):
            assert partition == mdc.PART_OBJ, term
        elif term.refid.startswith("MDC_EVT_"):
            assert partition == mdc.PART_EVT, term
        else:
            assert partition == mdc.PART_SCADA, term
