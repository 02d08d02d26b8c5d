"""MQTT 5 topics and message properties shared by the agent and the county gateway.

Contract (DESIGN.md §4): QoS 1, persistent sessions, MSH-10 is the dedup key.
"""

from __future__ import annotations

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


def up(agent_id: str) -> str:
    return f"{TOPIC_PREFIX}/{agent_id}/up"


def ack(agent_id: str) -> str:
    return f"{TOPIC_PREFIX}/{agent_id}/ack"


def state(agent_id: str) -> str:
    return f"{TOPIC_PREFIX}/{agent_id}/state"


def down(agent_id: str) -> str:
    return f"{TOPIC_PREFIX}/{agent_id}/down"


def gateway_subscription(group: str = GATEWAY_SHARE_GROUP) -> str:
    """Shared subscription: several gateways split the load, each message goes to one."""
    return f"$share/{group}/{TOPIC_PREFIX}/+/up"


def agent_of(topic: str) -> str | None:
    """The agent id in edge/v1/{agent}/..., or None for anything else."""
    parts = topic.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != TOPIC_PREFIX or not parts[2]:
        return None
    return parts[2]
