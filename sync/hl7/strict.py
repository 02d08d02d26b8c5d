"""hl7apy at strict validation: the oracle our fast ER7 writer is held to.

A message hl7apy builds is validated against the HL7 v2.6 structures it ships, then
written as ER7; whatever hl7apy raises while doing so (its own exceptions and ValueError
alike) becomes one Hl7Error naming the message, with AR-worthy code 207.
"""

from __future__ import annotations

from collections.abc import Callable

from hl7apy.core import Message

from sync.hl7.errors import APPLICATION_INTERNAL_ERROR, Hl7Error


def validated_er7(build: Callable[[], Message], *, what: str, control_id: str) -> str:
    """`build()`'s message, validated strictly, as ER7 text."""
    try:
        msg = build()
        msg.validate()
        text: str = msg.to_er7()
    except Exception as exc:  # hl7apy raises its own exceptions and ValueError alike
        raise Hl7Error(
            f"built {what} does not validate: {exc}",
            control_id=control_id,
            error_code=APPLICATION_INTERNAL_ERROR,
        ) from exc
    return text


def agreed(text: str, oracle: Callable[[], str], *, what: str, control_id: str) -> str:
    """`text` (the fast writer's) when the oracle writes the same; Hl7Error if not."""
    if oracle() != text:
        raise Hl7Error(
            f"ER7 writer and hl7apy disagree on this {what}",
            control_id=control_id,
            error_code=APPLICATION_INTERNAL_ERROR,
        )
    return text
