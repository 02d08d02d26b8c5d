"""IEEE 11073-10101 nomenclature: the codes this product speaks.

A code is partition × 65536 + term code. Partitions: 2 SCADA (metrics), 4 DIM (units),
8 INFRA (device specialisations). Term codes are taken from published nomenclature tables:
the IEEE 11073-20601 nomenclature as reproduced in the open-source Antidote/Signove stacks
and the NIST RTMMS export, cross-checked with IHE PCD example messages (e.g.
MDC_PRESS_BLD_NONINV_SYS 150021, MDC_DIM_MMHG 266016; docs/protocols/mdc-nomenclature.md).

Add a code here, with its term code, before any driver or message builder uses it:
callers look codes up by reference id and a missing one is a KeyError at import/test
time, not a silently wrong OBX-3.
"""

from __future__ import annotations

from dataclasses import dataclass

PART_OBJ = 1  # object-oriented attributes (MDC_ATTR_*)
PART_SCADA = 2
PART_EVT = 3  # events and alerts (MDC_EVT_*)
PART_DIM = 4
PART_INFRA = 8
PART_PHD_DM = 128  # personal health device partition (device specialisations)


@dataclass(frozen=True, slots=True)
class Term:
    refid: str
    code: int
    ucum: str = ""

    @property
    def coded(self) -> str:
        """HL7 CWE triple as PCD-01 writes it: code^refid^MDC."""
        return f"{self.code}^{self.refid}^MDC"


def _t(partition: int, term: int, refid: str, ucum: str = "") -> Term:
    return Term(refid=refid, code=partition * 65536 + term, ucum=ucum)


_TERMS: tuple[Term, ...] = (
    # --- metrics (SCADA) ---
    _t(PART_SCADA, 16770, "MDC_ECG_HEART_RATE"),
    _t(PART_SCADA, 18458, "MDC_PULS_OXIM_PULS_RATE"),
    _t(PART_SCADA, 18474, "MDC_PULS_RATE_NON_INV"),
    _t(PART_SCADA, 18948, "MDC_PRESS_BLD_NONINV"),
    _t(PART_SCADA, 18949, "MDC_PRESS_BLD_NONINV_SYS"),
    _t(PART_SCADA, 18950, "MDC_PRESS_BLD_NONINV_DIA"),
    _t(PART_SCADA, 18951, "MDC_PRESS_BLD_NONINV_MEAN"),
    # Cuff pressure while a NIBP measurement runs (BLE 0x2A36, BLS); the
    # CUFF_SYS/DIA/MEAN terms are 150301..150303, this is their base term.
    _t(PART_SCADA, 19228, "MDC_PRESS_CUFF"),
    _t(PART_SCADA, 19292, "MDC_TEMP_BODY"),
    _t(PART_SCADA, 19320, "MDC_TEMP_TYMP"),
    _t(PART_SCADA, 19376, "MDC_PULS_OXIM_PERF_REL"),
    _t(PART_SCADA, 19380, "MDC_PULS_OXIM_PLETH"),
    _t(PART_SCADA, 19384, "MDC_PULS_OXIM_SAT_O2"),
    _t(PART_SCADA, 20490, "MDC_RESP_RATE"),
    _t(PART_SCADA, 256, "MDC_ECG_ELEC_POTL"),
    _t(PART_SCADA, 257, "MDC_ECG_ELEC_POTL_I"),
    _t(PART_SCADA, 258, "MDC_ECG_ELEC_POTL_II"),
    _t(PART_SCADA, 259, "MDC_ECG_ELEC_POTL_V1"),
    _t(PART_SCADA, 260, "MDC_ECG_ELEC_POTL_V2"),
    _t(PART_SCADA, 261, "MDC_ECG_ELEC_POTL_V3"),
    _t(PART_SCADA, 262, "MDC_ECG_ELEC_POTL_V4"),
    _t(PART_SCADA, 263, "MDC_ECG_ELEC_POTL_V5"),
    _t(PART_SCADA, 264, "MDC_ECG_ELEC_POTL_V6"),
    _t(PART_SCADA, 317, "MDC_ECG_ELEC_POTL_III"),
    _t(PART_SCADA, 318, "MDC_ECG_ELEC_POTL_AVR"),
    _t(PART_SCADA, 319, "MDC_ECG_ELEC_POTL_AVL"),
    _t(PART_SCADA, 320, "MDC_ECG_ELEC_POTL_AVF"),
    _t(PART_SCADA, 28948, "MDC_CONC_GLU_GEN"),
    _t(PART_SCADA, 29112, "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
    _t(PART_SCADA, 29116, "MDC_CONC_GLU_CAPILLARY_PLASMA"),
    _t(PART_SCADA, 29148, "MDC_CONC_HBA1C"),
    _t(PART_SCADA, 57348, "MDC_TEMP_RECT"),
    _t(PART_SCADA, 57352, "MDC_TEMP_ORAL"),
    _t(PART_SCADA, 57356, "MDC_TEMP_EAR"),
    _t(PART_SCADA, 57360, "MDC_TEMP_FINGER"),
    _t(PART_SCADA, 57376, "MDC_TEMP_TOE"),
    _t(PART_SCADA, 57380, "MDC_TEMP_AXILLA"),
    _t(PART_SCADA, 57384, "MDC_TEMP_GIT"),
    _t(PART_SCADA, 57664, "MDC_MASS_BODY_ACTUAL"),
    _t(PART_SCADA, 57668, "MDC_LEN_BODY_ACTUAL"),
    _t(PART_SCADA, 57680, "MDC_RATIO_MASS_BODY_LEN_SQ"),
    # Masimo rainbow/SET parameters (docs/protocols/masimo.md). We found no published
    # 11073-10101 term for these, so they live in partition 2's private range (term codes
    # 0xF000 and up, which 10101 leaves to implementers) with refids marked MDCX_ so nobody
    # mistakes them for standard terms; the county platform must map them by agreement.
    _t(PART_SCADA, 0xF000, "MDCX_MASIMO_SPCO"),  # carboxyhaemoglobin saturation, %
    _t(PART_SCADA, 0xF001, "MDCX_MASIMO_SPMET"),  # methaemoglobin saturation, %
    _t(PART_SCADA, 0xF002, "MDCX_MASIMO_SPHB"),  # total haemoglobin, g/dL
    _t(PART_SCADA, 0xF003, "MDCX_MASIMO_PVI"),  # pleth variability index, %
    _t(PART_SCADA, 0xF004, "MDCX_MASIMO_DESAT"),  # desaturation index, count
    _t(PART_SCADA, 0xF005, "MDCX_MASIMO_PI_DELTA"),  # change of perfusion index, %
    # --- nonin driver terms ---
    # --- datex-s5 driver terms ---
    # Each comment is the published code (= 2 x 65536 + term) and where it is published:
    # [isik] gematik ISiK ICU ValueSet vs-mii-icu-code-monitoring-und-vitaldaten-iso11073
    # (urn:iso:std:iso:11073:10101 codes); [mindray] Mindray HL7 2.6 interface tables
    # 15-37 as reproduced in open source; [ge] GE CARESCAPE HL7 OBX examples.
    _t(PART_SCADA, 18442, "MDC_PULS_RATE"),  # 149514 [isik]
    _t(PART_SCADA, 18450, "MDC_BLD_PULS_RATE_INV"),  # 149522 [ge]
    _t(PART_SCADA, 18944, "MDC_PRESS_BLD"),  # 150016 [mindray]
    _t(PART_SCADA, 18945, "MDC_PRESS_BLD_SYS"),  # 150017 [isik][mindray]
    _t(PART_SCADA, 18946, "MDC_PRESS_BLD_DIA"),  # 150018 [isik][mindray]
    _t(PART_SCADA, 18947, "MDC_PRESS_BLD_MEAN"),  # 150019 [isik][mindray]
    _t(PART_SCADA, 18961, "MDC_PRESS_BLD_ART_SYS"),  # 150033 [ge]
    _t(PART_SCADA, 18962, "MDC_PRESS_BLD_ART_DIA"),  # 150034 [ge]
    _t(PART_SCADA, 18963, "MDC_PRESS_BLD_ART_MEAN"),  # 150035 [ge]
    _t(PART_SCADA, 18965, "MDC_PRESS_BLD_ART_ABP_SYS"),  # 150037 [mindray]
    _t(PART_SCADA, 18966, "MDC_PRESS_BLD_ART_ABP_DIA"),  # 150038 [mindray]
    _t(PART_SCADA, 18967, "MDC_PRESS_BLD_ART_ABP_MEAN"),  # 150039 [mindray]
    _t(PART_SCADA, 18973, "MDC_PRESS_BLD_ART_PULM_SYS"),  # 150045 [isik]
    _t(PART_SCADA, 18974, "MDC_PRESS_BLD_ART_PULM_DIA"),  # 150046 [isik]
    _t(PART_SCADA, 18975, "MDC_PRESS_BLD_ART_PULM_MEAN"),  # 150047 [isik]
    _t(PART_SCADA, 18993, "MDC_PRESS_BLD_ATR_LEFT_SYS"),  # 150065 [isik]
    _t(PART_SCADA, 18994, "MDC_PRESS_BLD_ATR_LEFT_DIA"),  # 150066 [isik]
    _t(PART_SCADA, 18995, "MDC_PRESS_BLD_ATR_LEFT_MEAN"),  # 150067 [isik]
    _t(PART_SCADA, 18997, "MDC_PRESS_BLD_ATR_RIGHT_SYS"),  # 150069 [isik]
    _t(PART_SCADA, 18998, "MDC_PRESS_BLD_ATR_RIGHT_DIA"),  # 150070 [isik]
    _t(PART_SCADA, 18999, "MDC_PRESS_BLD_ATR_RIGHT_MEAN"),  # 150071 [isik]
    _t(PART_SCADA, 19015, "MDC_PRESS_BLD_VEN_CENT_MEAN"),  # 150087 [ge]
    _t(PART_SCADA, 19033, "MDC_PRESS_BLD_VENT_RIGHT_SYS"),  # 150105 [isik]
    _t(PART_SCADA, 19034, "MDC_PRESS_BLD_VENT_RIGHT_DIA"),  # 150106 [isik]
    _t(PART_SCADA, 19035, "MDC_PRESS_BLD_VENT_RIGHT_MEAN"),  # 150107 [isik]
    _t(PART_SCADA, 22536, "MDC_PRESS_INTRA_CRAN"),  # 153608 [isik][mindray]
    _t(PART_SCADA, 19272, "MDC_TEMP"),  # 150344 [mindray]
    _t(PART_SCADA, 19284, "MDC_TEMP_AWAY"),  # 150356 [isik][mindray]
    _t(PART_SCADA, 19296, "MDC_TEMP_CORE"),  # 150368 [isik][mindray]
    _t(PART_SCADA, 19300, "MDC_TEMP_ESOPH"),  # 150372 [isik][mindray]
    _t(PART_SCADA, 19308, "MDC_TEMP_NASOPH"),  # 150380 [isik][mindray]
    _t(PART_SCADA, 19316, "MDC_TEMP_SKIN"),  # 150388 [mindray]
    _t(PART_SCADA, 57428, "MDC_TEMP_MYO"),  # 188500 [isik][mindray]
    _t(PART_SCADA, 57436, "MDC_TEMP_ROOM"),  # 188508 [mindray]
    _t(PART_SCADA, 20506, "MDC_TTHOR_RESP_RATE"),  # 151578 [mindray]
    _t(PART_SCADA, 20522, "MDC_CO2_RESP_RATE"),  # 151594 [mindray]
    _t(PART_SCADA, 20628, "MDC_CONC_AWAY_CO2"),  # 151700 [mindray]
    # 151708: [mindray] writes MDC_CONC_AWAY_CO2_ET, OpenICE and others MDC_AWAY_CO2_ET.
    _t(PART_SCADA, 20636, "MDC_AWAY_CO2_ET"),  # 151708 [mindray]
    _t(PART_SCADA, 20644, "MDC_CONC_AWAY_CO2_INSP"),  # 151716 [mindray][ge]
    _t(PART_SCADA, 21124, "MDC_CONC_AWAY_O2_INSP"),  # 152196 [mindray]
    _t(PART_SCADA, 21368, "MDC_CONC_AWAY_O2_ET"),  # 152440 [mindray]
    # --- intellivue driver terms ---
    # IntelliVue physio ids are 10101 SCADA term codes (Data Export Interface Programming
    # Guide, "Physiological Identifiers": NOM_PLETH_PULS_RATE 0x4822, NOM_RESP 0x5000,
    # NOM_AWAY_RESP_RATE 0x5012), with the 10101 reference ids (MDC_PLETH_PULS_RATE 18466
    # as in the Antidote/Signove table). MDC_TEMP and MDC_AWAY_CO2_ET are listed above.
    _t(PART_SCADA, 18466, "MDC_PLETH_PULS_RATE"),
    _t(PART_SCADA, 20480, "MDC_RESP"),
    _t(PART_SCADA, 20498, "MDC_AWAY_RESP_RATE"),
    # --- hl7-mllp driver terms ---
    # ble-glucose: glucose by sample type (BLE 0x2A18 type nibble, GSS "Glucose
    # Measurement"), IEEE 11073-10417 terms. Codes as in the 10417 nomenclature tables of
    # open-source 11073 managers (e.g. Java `Nomenclature.MDC_CONC_GLU_VENOUS_WHOLEBLOOD =
    # 29120` ... `MDC_CONC_GLU_ISF = 29140`, next to the CAPILLARY terms above); the
    # undetermined terms as in HL7 FHIR PHD device examples (160364, 160368) and 10101 enum
    # tables.
    _t(PART_SCADA, 29120, "MDC_CONC_GLU_VENOUS_WHOLEBLOOD"),  # 160192
    _t(PART_SCADA, 29124, "MDC_CONC_GLU_VENOUS_PLASMA"),  # 160196
    _t(PART_SCADA, 29128, "MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD"),  # 160200
    _t(PART_SCADA, 29132, "MDC_CONC_GLU_ARTERIAL_PLASMA"),  # 160204
    _t(PART_SCADA, 29136, "MDC_CONC_GLU_CONTROL"),  # 160208
    _t(PART_SCADA, 29140, "MDC_CONC_GLU_ISF"),  # 160212
    _t(PART_SCADA, 29292, "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD"),  # 160364
    _t(PART_SCADA, 29296, "MDC_CONC_GLU_UNDETERMINED_PLASMA"),  # 160368
    # NIBP as monitors that push PCD-01 report it (cuff pressure, 150301..150303) and the
    # perfusion index Mindray's IHE export sends (150488). Published in IHE PCD ORU^R01
    # example messages (e.g. `150301^MDC_PRESS_CUFF_SYS^MDC ... 266016^MDC_DIM_MMHG^MDC`)
    # and Mindray's HL7 export as reproduced in open source (YiCare MR_IHE.cs mapping
    # `150301^MDC_PRESS_CUFF_SYS^MDC` Sys, 150302 Dia, 150303 Mean;
    # docs/protocols/hl7-mllp-monitors.md).
    _t(PART_SCADA, 19229, "MDC_PRESS_CUFF_SYS"),  # 150301
    _t(PART_SCADA, 19230, "MDC_PRESS_CUFF_DIA"),  # 150302
    _t(PART_SCADA, 19231, "MDC_PRESS_CUFF_MEAN"),  # 150303
    _t(PART_SCADA, 19416, "MDC_BLD_PERF_INDEX"),  # 150488
    # --- scale-ascii driver terms ---
    # BLE Heart Rate 0x2A37 RR intervals (GSS "Heart Rate Measurement"), in ms: 147240 = 2 x
    # 65536 + 16168, published in the MII Kardio FHIR IG example
    # "mii-exa-kardio-ekg-rr-interval" (`$mdc#147240 "MDC_ECG_TIME_PD_RR_GL"`, valueQuantity
    # in ms) and in the 10101 enums of open-source 11073 stacks (MDC_ECG_TIME_PD_RR_GL =
    # 16168, partition SCADA).
    _t(PART_SCADA, 16168, "MDC_ECG_TIME_PD_RR_GL"),  # 147240
    # --- 12-lead ECG cart measurements (ECG files, docs/protocols/ecg-files.md) ---
    # Global intervals: DICOM PS3.16 CID 3689 "ECG Global Waveform Duration" (MDC 2:15872
    # PR, 2:16156 QRS, 2:16160 QT, each with its MDC_..._GL reference id). QTc: 16164 as
    # in the 11073-20601 nomenclature headers of open-source managers (next to QT_GL
    # 16160 and RR_GL 16168); DICOM CID 3227 codes "QTc interval global" 2:15876 instead,
    # which a reader of our messages may also meet. Axes: DICOM CID 3229 "ECG Axis
    # Measurement" (2:16128 P, 2:16132 QRS, 2:16136 T).
    _t(PART_SCADA, 15872, "MDC_ECG_TIME_PD_PR_GL"),  # 146944
    _t(PART_SCADA, 16156, "MDC_ECG_TIME_PD_QRS_GL"),  # 147228
    _t(PART_SCADA, 16160, "MDC_ECG_TIME_PD_QT_GL"),  # 147232
    _t(PART_SCADA, 16164, "MDC_ECG_TIME_PD_QTc"),  # 147236
    _t(PART_SCADA, 16128, "MDC_ECG_ANGLE_P_FRONT"),  # 147200
    _t(PART_SCADA, 16132, "MDC_ECG_ANGLE_QRS_FRONT"),  # 147204
    _t(PART_SCADA, 16136, "MDC_ECG_ANGLE_T_FRONT"),  # 147208
    # --- units (DIM) ---
    _t(PART_DIM, 512, "MDC_DIM_DIMLESS", "1"),
    _t(PART_DIM, 544, "MDC_DIM_PERCENT", "%"),
    _t(PART_DIM, 736, "MDC_DIM_ANG_DEG", "deg"),  # 262880, 11073-20601 nomenclature tables
    _t(PART_DIM, 1297, "MDC_DIM_CENTI_M", "cm"),
    _t(PART_DIM, 1731, "MDC_DIM_KILO_G", "kg"),
    _t(PART_DIM, 1760, "MDC_DIM_LB", "[lb_av]"),
    _t(PART_DIM, 1952, "MDC_DIM_KG_PER_M_SQ", "kg/m2"),
    _t(PART_DIM, 2112, "MDC_DIM_G_PER_DL", "g/dL"),  # milli- prefix is +18: 2130
    _t(PART_DIM, 2130, "MDC_DIM_MILLI_G_PER_DL", "mg/dL"),
    _t(PART_DIM, 2176, "MDC_DIM_SEC", "s"),
    _t(PART_DIM, 2194, "MDC_DIM_MILLI_SEC", "ms"),
    _t(PART_DIM, 2496, "MDC_DIM_HZ", "Hz"),  # 264640, 11073-20601 dimension tables
    _t(PART_DIM, 2720, "MDC_DIM_BEAT_PER_MIN", "{beat}/min"),
    _t(PART_DIM, 2784, "MDC_DIM_RESP_PER_MIN", "{breath}/min"),
    _t(PART_DIM, 3843, "MDC_DIM_KILO_PASCAL", "kPa"),
    _t(PART_DIM, 3872, "MDC_DIM_MMHG", "mm[Hg]"),
    _t(PART_DIM, 3968, "MDC_DIM_JOULES", "J"),
    _t(PART_DIM, 4256, "MDC_DIM_VOLT", "V"),
    _t(PART_DIM, 4274, "MDC_DIM_MILLI_VOLT", "mV"),
    _t(PART_DIM, 4275, "MDC_DIM_MICRO_VOLT", "uV"),
    _t(PART_DIM, 4416, "MDC_DIM_FAHR", "[degF]"),
    _t(PART_DIM, 4722, "MDC_DIM_MILLI_MOLE_PER_L", "mmol/L"),
    _t(PART_DIM, 6048, "MDC_DIM_DEGC", "Cel"),
    # --- unit terms added by drivers ---
    # --- waveform attributes (PCD waveform content rows beside an NA row) ---
    # Written with the codes monitors that export HL7 waveforms use (IHE PCD example
    # messages and Mindray's export as read by open-source consumers:
    # `0^MDC_ATTR_SAMP_RATE^MDC` and `2327^MDC_ATTR_NU_MSMT_RES^MDC`), so platforms that
    # already take those monitors' waves read ours. Not partition-coded: see the note in
    # docs/architecture.md; the reference id is what readers key on.
    Term("MDC_ATTR_SAMP_RATE", 0),
    Term("MDC_ATTR_NU_MSMT_RES", 2327),
    # --- alert reporting (IHE PCD-04 ORU^R40 rows) ---
    # MDC_EVT_ALARM 196616 (partition 3 events, term 8) in OBR-4 and the event row; the
    # attribute rows as Mindray's ORU^R40 export and PCD-04 example messages number them
    # (68480 source .. 68485 alert type, partition 1). Some IHE examples use 68164-68168
    # for source/phase/state/inactivation/priority instead; readers key on the refid.
    _t(PART_EVT, 8, "MDC_EVT_ALARM"),  # 196616
    _t(PART_OBJ, 2944, "MDC_ATTR_ALERT_SOURCE"),  # 68480
    _t(PART_OBJ, 2945, "MDC_ATTR_EVENT_PHASE"),  # 68481
    _t(PART_OBJ, 2946, "MDC_ATTR_ALARM_STATE"),  # 68482
    _t(PART_OBJ, 2948, "MDC_ATTR_ALARM_PRIORITY"),  # 68484
    _t(PART_OBJ, 2949, "MDC_ATTR_ALERT_TYPE"),  # 68485
    # --- a 12-lead cart's context (issue 11): the MDS's System-Model attribute and the
    # Patient Demographics attributes sex and age (IEEE 11073-10201 object model, term
    # codes from 11073-10101 partition 1: 2344, 2401, 2520), with ages in years, days
    # or hours (partition 4 dimensions 2368, 2272, 2240).
    _t(PART_OBJ, 2344, "MDC_ATTR_ID_MODEL"),  # 67880
    _t(PART_OBJ, 2401, "MDC_ATTR_PT_SEX"),  # 67937
    _t(PART_OBJ, 2520, "MDC_ATTR_PT_AGE"),  # 68056
    _t(PART_DIM, 2240, "MDC_DIM_HR", "h"),  # 264384
    _t(PART_DIM, 2272, "MDC_DIM_DAY", "d"),  # 264416
    _t(PART_DIM, 2368, "MDC_DIM_YR", "a"),  # 264512
    # --- device specialisations (PHD partition: 528384 + n) ---
    _t(PART_INFRA, 4100, "MDC_DEV_SPEC_PROFILE_PULS_OXIM"),
    _t(PART_INFRA, 4103, "MDC_DEV_SPEC_PROFILE_BP"),
    _t(PART_INFRA, 4104, "MDC_DEV_SPEC_PROFILE_TEMP"),
    _t(PART_INFRA, 4111, "MDC_DEV_SPEC_PROFILE_SCALE"),
    _t(PART_INFRA, 4113, "MDC_DEV_SPEC_PROFILE_GLUCOSE"),
    _t(PART_INFRA, 4097, "MDC_DEV_SPEC_PROFILE_HYDRA"),  # generic multi-parameter monitor
)

BY_REFID: dict[str, Term] = {t.refid: t for t in _TERMS}
BY_CODE: dict[int, Term] = {t.code: t for t in _TERMS}


def term(refid: str) -> Term:
    """The term for a reference id; KeyError names the missing id."""
    try:
        return BY_REFID[refid]
    except KeyError:
        raise KeyError(f"MDC reference id not in edge_agent.mdc: {refid}") from None


def code(refid: str) -> int:
    return term(refid).code
