"""Does a 12-lead's interpretation say acute MI / STEMI? (the ECG pre-alert's trigger)

The cart has read the ECG; the box does not second-guess it, it reads what the cart
wrote. docs/protocols/ecg-files.md: acute-MI statements are plain text ("ACUTE MI", "acute
infarct", "STEMI", "ST elevation ... consider acute injury"), coded in aECG and DICOM
files, and Chinese carts write them in Chinese (急性心肌梗死, ST段抬高型心肌梗死,
急性前壁心梗). A statement that negates ("no acute MI", "无急性心梗", "old infarct",
"陈旧性心梗") does not trigger: an old infarct does not call the cath lab. When in doubt
the crew decides (`edge-agent prealert --stemi`): a missed automatic trigger is covered
by the crew, a false one by the ER's reading of the sheet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from edge_agent.model import Statement

# Acute infarction / injury wording, English (Philips, GE, Mortara style) and Chinese.
_ACUTE = re.compile(
    r"\bstemi\b"
    r"|\bacute\b[^.;]{0,40}\b(mi|infarct\w*|injury)\b"
    r"|\b(mi|infarct\w*)\b[^.;]{0,20}\bacute\b"
    r"|\bst[- ]?(segment\s+)?elevation\b[^.;]{0,60}\b(infarct\w*|injury|mi)\b"
    r"|\bmeets\s+st\s*elevation\s+mi\s+criteria\b"
    r"|急性[^，。；,;]{0,8}(心肌梗死|心梗|梗死|心肌损伤)"
    r"|st段抬高型?(心肌梗死|心梗)",
    re.IGNORECASE,
)
# Negation or age that turns the statement away from an acute event.
_NOT_ACUTE = re.compile(
    r"\b(no|not|without|rule\s*out|r/o|old|age\s+undetermined|prior|possible\s+old)\b"
    r"|无|非|陈旧|排除|可能陈旧",
    re.IGNORECASE,
)
# Codes that mean acute MI where a format codes its statements (aECG / SCP universal
# statement codes as carts send them).
_ACUTE_CODES = frozenset({"MDC_ECG_MI_ACUTE", "MDC_ECG_INFARCT_ACUTE", "AMI", "STEMI"})


def acute_mi_statement(statements: Iterable[Statement]) -> Statement | None:
    """The first statement that says acute MI / STEMI, None when none does."""
    for statement in statements:
        if statement.code and statement.code.upper() in _ACUTE_CODES:
            return statement
        text = statement.text
        if _ACUTE.search(text) and not _NOT_ACUTE.search(text):
            return statement
    return None
