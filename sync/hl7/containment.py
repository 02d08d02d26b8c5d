"""Where each observation sits in the device's containment tree (OBX-4).

IHE PCD TF-2 Appendix B.8.4 writes OBX-4 as `MDS.VMD.channel.metric`, the IEEE
11073-10201 containment: the device (MDS) holds virtual medical devices (VMD, one per
measuring function: the SpO2 module, the NIBP module ...), which hold channels (related
metrics: systolic, diastolic and mean of one cuff measurement), which hold the metrics.

A device that speaks HL7 itself said where its rows sit: that is forwarded as it was
(`Reading.sub_id`, an MLLP monitor's `1.2.1.1`). For our own drivers the tree is this
table, the same for every driver that measures the metric, so a receiver finds SpO2 at
`1.2.1.1` whether a Nonin, a Masimo or a BLE oximeter measured it:

    VMD 1 ECG                  channel 1 heart rate and the cart's intervals and axes
    VMD 2 pulse oximetry       channel 1 SpO2, pulse rate, perfusion, Masimo extras
    VMD 3 non-invasive BP      channel 1 systolic, diastolic, mean, cuff, pulse rate
    VMD 4 temperature          channel 1 every site
    VMD 5 respiration, gases   channel 1 rates, channel 2 CO2/O2 concentrations
    VMD 6 invasive pressure    channel 1 arterial, 2 pulmonary, 3 LA, 4 RA, 5 CVP,
                               6 RV, 7 intracranial, 8 unspecified site
    VMD 7 glucose, HbA1c       channel 1 glucose (every sample type), channel 2 HbA1c
    VMD 8 body measurements    channel 1 weight, height, BMI
    VMD 9 anything else        channel 1

The metric number is the metric's place in its channel's list below (fixed, so the same
metric keeps its sub-id from message to message); a second row of the same metric in one
message takes the next free number after the list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MDS = 1

# (VMD, channel, metrics in order): the first match by exact reference id wins.
_TREE: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (
        1,
        1,
        (
            "MDC_ECG_HEART_RATE",
            "MDC_ECG_TIME_PD_RR_GL",
            "MDC_ECG_TIME_PD_PR_GL",
            "MDC_ECG_TIME_PD_QRS_GL",
            "MDC_ECG_TIME_PD_QT_GL",
            "MDC_ECG_ANGLE_P_FRONT",
            "MDC_ECG_ANGLE_QRS_FRONT",
            "MDC_ECG_ANGLE_T_FRONT",
        ),
    ),
    (
        2,
        1,
        (
            "MDC_PULS_OXIM_SAT_O2",
            "MDC_PULS_OXIM_PULS_RATE",
            "MDC_PLETH_PULS_RATE",
            "MDC_PULS_OXIM_PERF_REL",
            "MDC_BLD_PERF_INDEX",
            "MDCX_MASIMO_SPCO",
            "MDCX_MASIMO_SPMET",
            "MDCX_MASIMO_SPHB",
            "MDCX_MASIMO_PVI",
            "MDCX_MASIMO_DESAT",
            "MDCX_MASIMO_PI_DELTA",
        ),
    ),
    (
        3,
        1,
        (
            "MDC_PRESS_BLD_NONINV_SYS",
            "MDC_PRESS_BLD_NONINV_DIA",
            "MDC_PRESS_BLD_NONINV_MEAN",
            "MDC_PRESS_CUFF_SYS",
            "MDC_PRESS_CUFF_DIA",
            "MDC_PRESS_CUFF_MEAN",
            "MDC_PRESS_CUFF",
            "MDC_PULS_RATE_NON_INV",
        ),
    ),
    (
        4,
        1,
        (
            "MDC_TEMP_BODY",
            "MDC_TEMP",
            "MDC_TEMP_ORAL",
            "MDC_TEMP_TYMP",
            "MDC_TEMP_EAR",
            "MDC_TEMP_AXILLA",
            "MDC_TEMP_RECT",
            "MDC_TEMP_FINGER",
            "MDC_TEMP_TOE",
            "MDC_TEMP_GIT",
            "MDC_TEMP_CORE",
            "MDC_TEMP_ESOPH",
            "MDC_TEMP_NASOPH",
            "MDC_TEMP_SKIN",
            "MDC_TEMP_MYO",
            "MDC_TEMP_AWAY",
            "MDC_TEMP_ROOM",
        ),
    ),
    (
        5,
        1,
        (
            "MDC_RESP_RATE",
            "MDC_TTHOR_RESP_RATE",
            "MDC_AWAY_RESP_RATE",
            "MDC_CO2_RESP_RATE",
        ),
    ),
    (
        5,
        2,
        (
            "MDC_AWAY_CO2_ET",
            "MDC_CONC_AWAY_CO2",
            "MDC_CONC_AWAY_CO2_INSP",
            "MDC_CONC_AWAY_O2_INSP",
            "MDC_CONC_AWAY_O2_ET",
        ),
    ),
    (
        6,
        1,
        (
            "MDC_PRESS_BLD_ART_SYS",
            "MDC_PRESS_BLD_ART_DIA",
            "MDC_PRESS_BLD_ART_MEAN",
            "MDC_PRESS_BLD_ART_ABP_SYS",
            "MDC_PRESS_BLD_ART_ABP_DIA",
            "MDC_PRESS_BLD_ART_ABP_MEAN",
            "MDC_BLD_PULS_RATE_INV",
        ),
    ),
    (
        6,
        2,
        (
            "MDC_PRESS_BLD_ART_PULM_SYS",
            "MDC_PRESS_BLD_ART_PULM_DIA",
            "MDC_PRESS_BLD_ART_PULM_MEAN",
        ),
    ),
    (
        6,
        3,
        ("MDC_PRESS_BLD_ATR_LEFT_SYS", "MDC_PRESS_BLD_ATR_LEFT_DIA", "MDC_PRESS_BLD_ATR_LEFT_MEAN"),
    ),
    (
        6,
        4,
        (
            "MDC_PRESS_BLD_ATR_RIGHT_SYS",
            "MDC_PRESS_BLD_ATR_RIGHT_DIA",
            "MDC_PRESS_BLD_ATR_RIGHT_MEAN",
        ),
    ),
    (6, 5, ("MDC_PRESS_BLD_VEN_CENT_MEAN",)),
    (
        6,
        6,
        (
            "MDC_PRESS_BLD_VENT_RIGHT_SYS",
            "MDC_PRESS_BLD_VENT_RIGHT_DIA",
            "MDC_PRESS_BLD_VENT_RIGHT_MEAN",
        ),
    ),
    (6, 7, ("MDC_PRESS_INTRA_CRAN",)),
    (6, 8, ("MDC_PRESS_BLD_SYS", "MDC_PRESS_BLD_DIA", "MDC_PRESS_BLD_MEAN", "MDC_PRESS_BLD")),
    (
        7,
        1,
        (
            "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
            "MDC_CONC_GLU_CAPILLARY_PLASMA",
            "MDC_CONC_GLU_VENOUS_WHOLEBLOOD",
            "MDC_CONC_GLU_VENOUS_PLASMA",
            "MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD",
            "MDC_CONC_GLU_ARTERIAL_PLASMA",
            "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD",
            "MDC_CONC_GLU_UNDETERMINED_PLASMA",
            "MDC_CONC_GLU_ISF",
            "MDC_CONC_GLU_CONTROL",
            "MDC_CONC_GLU_GEN",
        ),
    ),
    (7, 2, ("MDC_CONC_HBA1C",)),
    (8, 1, ("MDC_MASS_BODY_ACTUAL", "MDC_LEN_BODY_ACTUAL", "MDC_RATIO_MASS_BODY_LEN_SQ")),
)
OTHER_VMD = 9

_PLACE: dict[str, tuple[int, int, int]] = {
    metric: (vmd, channel, number)
    for vmd, channel, metrics in _TREE
    for number, metric in enumerate(metrics, start=1)
}
_CHANNEL_SIZE = {(vmd, channel): len(metrics) for vmd, channel, metrics in _TREE}

# OBX-4 (ST, 20 characters in v2.6) as a source may write it: dotted positive numbers.
_SUB_ID = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9}){0,7}", re.ASCII)
MAX_SUB_ID = 20


def place(metric: str) -> tuple[int, int, int]:
    """(VMD, channel, metric number) of a metric in our tree; unknown ones go to VMD 9."""
    return _PLACE.get(metric, (OTHER_VMD, 1, 0))


def usable_sub_id(text: str | None) -> str | None:
    """A source's OBX-4 if it is a dotted tree position we can forward, else None."""
    if not text:
        return None
    text = text.strip()
    return text if len(text) <= MAX_SUB_ID and _SUB_ID.fullmatch(text) else None


def sub_ids(metrics: Sequence[str], given: Sequence[str | None]) -> list[str]:
    """OBX-4 for each row: the source's position when it gave one, else ours (module
    docstring), never the same position twice in one message."""
    used = {g for g in given if g}
    next_free: dict[tuple[int, int], int] = {}
    out: list[str] = []
    for metric, source in zip(metrics, given, strict=True):
        if source:
            out.append(source)
            continue
        vmd, channel, number = place(metric)
        candidate = f"{MDS}.{vmd}.{channel}.{number}" if number else ""
        if not candidate or candidate in used:
            key = (vmd, channel)
            number = next_free.get(key, _CHANNEL_SIZE.get(key, 0))
            while True:
                number += 1
                candidate = f"{MDS}.{vmd}.{channel}.{number}"
                if candidate not in used:
                    break
            next_free[key] = number
        used.add(candidate)
        out.append(candidate)
    return out
