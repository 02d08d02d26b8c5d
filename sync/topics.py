"""MQTT 5 topics and message properties shared by the agent and the county gateway.

Contract (docs/contracts.md "MQTT topics"): QoS 1, persistent sessions, MSH-10 is the dedup
key. Every topic is built from an agent id checked against edge_agent.identifiers.AGENT_ID,
and the agent id of a received topic is checked the same way (`agent_in`), so no topic level
is ever '..', a wildcard, empty or more than 64 characters.
"""

from __future__ import annotations

from edge_agent.identifiers import AGENT_ID, SHARE_GROUP, shown

TOPIC_PREFIX = "edge/v1"

# The MQTT 5 Content Type of an uplinked message. A compressed payload appends
# "; compression=zlib" (RFC 1950 zlib stream) so a gateway never has to guess. Messages
# above COMPRESS_OVER bytes are compressed: a 12-lead's ER7 shrinks to about a third,
# which is what makes it fit a 256 kbit/s ambulance link in seconds (docs/benchmarks.md).
CONTENT_TYPE_HL7 = "application/hl7-v2+er7; charset=utf-8"
COMPRESSION_ZLIB = "zlib"
CONTENT_TYPE_HL7_ZLIB = f"{CONTENT_TYPE_HL7}; compression={COMPRESSION_ZLIB}"
CONTENT_TYPE_JSON = "application/json"
COMPRESS_OVER = 4096


def compression_of(content_type: str | None) -> str | None:
    """The `compression=` parameter of a content type, None when there is none."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "compression":
            return value.strip().lower() or None
    return None


GATEWAY_SHARE_GROUP = "county-gateway"

# The last level of each topic an agent has (docs/contracts.md).
UP, ACK, STATE, DOWN = "up", "ack", "state", "down"
AUDIT = "audit"  # audit batches to anchor (sync.audit_batches); answered on ACK
KINDS = (UP, ACK, STATE, DOWN, AUDIT)
# edge/v1/ + a 64-character agent id + /state: a received topic longer than this is not
# ours, and is refused before it is split (MQTT allows 65 535 bytes).
MAX_TOPIC_LENGTH = len(TOPIC_PREFIX) + 2 + AGENT_ID.max_length + max(map(len, KINDS))


class TopicError(ValueError):
    """A received topic that is not edge/v1/{valid agent id}/{kind}; one line, safe.
    `unquoted`: the same without the topic's text (what the gateway stores and logs:
    a topic is the sender's to fill)."""

    def __init__(self, message: str, unquoted: str) -> None:
        super().__init__(message)
        self.unquoted = unquoted


def _topic(agent_id: str, kind: str) -> str:
    # Checked on every build, so no code path can put an unchecked id into a topic.
    return f"{TOPIC_PREFIX}/{AGENT_ID.check(agent_id)}/{kind}"


def up(agent_id: str) -> str:
    return _topic(agent_id, UP)


def ack(agent_id: str) -> str:
    return _topic(agent_id, ACK)


def state(agent_id: str) -> str:
    return _topic(agent_id, STATE)


def down(agent_id: str) -> str:
    return _topic(agent_id, DOWN)


def audit(agent_id: str) -> str:
    return _topic(agent_id, AUDIT)


def gateway_audit_subscription(group: str = GATEWAY_SHARE_GROUP) -> str:
    """The audit batches of every box, shared like `gateway_subscription`."""
    return f"$share/{SHARE_GROUP.check(group)}/{TOPIC_PREFIX}/+/{AUDIT}"


def gateway_subscription(group: str = GATEWAY_SHARE_GROUP) -> str:
    """Shared subscription: several gateways split the load, each message goes to one."""
    return f"$share/{SHARE_GROUP.check(group)}/{TOPIC_PREFIX}/+/{UP}"


def agent_in(topic: str, kind: str) -> str:
    """The agent id of a received edge/v1/{agent}/{kind}; TopicError for anything else.

    The broker routes `edge/v1/../up` to a `+/up` subscription like any other level, so
    the level is checked here, not trusted because the subscription matched.
    """
    if len(topic) > MAX_TOPIC_LENGTH:
        too_long = f"is longer than {MAX_TOPIC_LENGTH} characters"
        raise TopicError(f"topic {shown(topic)} {too_long}", f"topic {too_long}")
    parts = topic.split("/")
    expected = f"{TOPIC_PREFIX}/{{agent}}/{kind}"
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != TOPIC_PREFIX or parts[3] != kind:
        raise TopicError(f"topic {shown(topic)} is not {expected}", f"topic is not {expected}")
    problem = AGENT_ID.problem(parts[2])
    if problem is not None:
        raise TopicError(
            f"topic {shown(topic)}: {AGENT_ID.what} {shown(parts[2])} {problem}",
            f"topic's {AGENT_ID.what} level {problem}",
        )
    return parts[2]
