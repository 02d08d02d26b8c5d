"""Identifiers that become paths, topics or keys: one rule each, checked where they enter.

The oracle for the property tests is the rule as docs/contracts.md and edge_agent.identifiers
state it in words (1 to N of ASCII letters, digits, '-', '_', '.', the first a letter or
digit), written here with sets, not with the module's regular expression.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent import config
from edge_agent.identifiers import (
    AGENT_ID,
    CLIENT_ID,
    CONTROL_ID,
    DEVICE_ID,
    SHARE_GROUP,
    IdentifierError,
    IdentifierRule,
)
from sync import topics

RULES = (AGENT_ID, DEVICE_ID, CONTROL_ID, SHARE_GROUP, CLIENT_ID)
FIRST = set(string.ascii_letters + string.digits)
REST = FIRST | set("-_.")


def by_the_words(rule: IdentifierRule, value: str) -> bool:
    return (
        1 <= len(value) <= rule.max_length
        and value[0] in FIRST
        and all(char in REST for char in value)
    )


# Text that is near the rule's edges: mostly allowed characters, some that are not
# (separators, wildcards, NUL, line breaks, look-alikes, bidi controls), any length.
NEAR_IDS = st.text(
    alphabet=st.sampled_from(
        [*"aZ09-_.", "/", "+", "#", "\x00", "\n", "\r", " ", "\\", "%", "é", "救", "\u202e"]
    )
    | st.characters(),
    max_size=140,
)


@pytest.mark.parametrize(
    ("rule", "value", "valid"),
    [
        (AGENT_ID, "amb-017", True),  # the contract's example
        (AGENT_ID, "clinic_3.village-12", True),
        (AGENT_ID, "a" * 64, True),
        (AGENT_ID, "a" * 65, False),
        (AGENT_ID, "..", False),  # the edge/v1/../up
        (AGENT_ID, ".", False),
        (AGENT_ID, "-amb", False),
        (AGENT_ID, "amb/017", False),
        (AGENT_ID, "+", False),
        (AGENT_ID, "#", False),
        (AGENT_ID, "amb\x00", False),
        (AGENT_ID, "amb-017\n", False),  # `$` in the old pattern let this through
        (AGENT_ID, "救护车", False),
        (AGENT_ID, "ａｍｂ", False),  # full-width look-alikes
        (AGENT_ID, "", False),
        (CONTROL_ID, "01JD5ZQ3V6K2X8M4N7P9R0S1T2", True),  # edge_agent.clock's ULIDs
        (CONTROL_ID, "3f1c2b9e-8d7a-4c6b-9e5f-1a2b3c4d5e6f", True),  # a UUID
        (CONTROL_ID, "../../../../outside/PWNED", False),  # the MSH-10
        (CONTROL_ID, "ECG|1", False),
        (SHARE_GROUP, "county-gateway", True),
        (SHARE_GROUP, "county/gw", False),  # MQTT 5.0 §4.8.2: no '/' in a ShareName
        (CLIENT_ID, "edge-agent-" + "a" * 64, True),  # the box's own, longest
        (DEVICE_ID, "cuff-6a0017", True),
        (DEVICE_ID, "cuff 1", False),
    ],
)
def test_rules(rule: IdentifierRule, value: str, valid: bool) -> None:
    assert rule.valid(value) is valid
    if valid:
        assert rule.check(value) == value
    else:
        with pytest.raises(IdentifierError):
            rule.check(value)


@given(value=NEAR_IDS, rule=st.sampled_from(RULES))
def test_accepted_exactly_when_the_rule_says(value: str, rule: IdentifierRule) -> None:
    expected = by_the_words(rule, value)
    assert rule.valid(value) is expected
    assert (rule.problem(value) is None) is expected
    if not expected:
        with pytest.raises(IdentifierError) as caught:
            rule.check(value)
        message = str(caught.value)
        # one line, naming the kind of id, never the whole of a huge value
        assert message.startswith(rule.what) and message.isprintable()
        assert len(message) < 300


def test_an_error_stays_short_when_the_value_escapes_long() -> None:
    # Found by the property test in CI: 40 characters of astral-plane text are 400 once
    # escaped; the error line must stay short whatever the value's characters are.
    value = (
        "0" * 24 + "\x1f" * 9 + "\U00012544\U00018cd6\U0001da8c\U0002ebe1" + "\U0003134b" * 3 + "0"
    )
    with pytest.raises(IdentifierError) as caught:
        CONTROL_ID.check(value)
    message = str(caught.value)
    assert message.isprintable() and len(message) < 300
    assert "(41 characters)" in message


@given(value=st.one_of(st.none(), st.integers(), st.binary(max_size=10)))
def test_values_that_are_not_text_are_refused(value: object) -> None:
    assert not AGENT_ID.valid(value)
    with pytest.raises(IdentifierError, match="must be text"):
        AGENT_ID.check(value)


# --- topics ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic",
    [
        "edge/v1/../up",  # the issue
        "edge/v1/+/up",
        "edge/v1/#/up",
        "edge/v1/a/b/up",
        "edge/v1//up",
        "edge/v1/amb\x00/up",
        "edge/v1/" + "a" * 65 + "/up",
        "edge/v1/" + "a" * 100_000 + "/up",
        "edge/v1/救护车/up",
        "edge/v1/amb-017/ack",  # the right agent, the wrong direction
        "edge/v2/amb-017/up",
        "/edge/v1/amb-017/up",
        "edge/v1/amb-017/up/",
    ],
)
def test_received_topics_that_are_refused(topic: str) -> None:
    with pytest.raises(topics.TopicError) as caught:
        topics.agent_in(topic, topics.UP)
    assert str(caught.value).startswith("topic ") and str(caught.value).isprintable()


def test_a_received_topic_gives_its_agent() -> None:
    assert topics.agent_in("edge/v1/amb-017/up", topics.UP) == "amb-017"
    assert topics.agent_in("edge/v1/amb-017/down", topics.DOWN) == "amb-017"


@given(level=NEAR_IDS)
def test_agent_in_accepts_a_level_exactly_when_it_is_an_agent_id(level: str) -> None:
    topic = f"edge/v1/{level}/up"
    if by_the_words(AGENT_ID, level):
        assert topics.agent_in(topic, topics.UP) == level
        assert topics.up(level) == topic
    else:
        with pytest.raises(topics.TopicError):
            topics.agent_in(topic, topics.UP)


@given(topic=st.text(max_size=200))
def test_any_accepted_topic_is_one_the_agent_could_have_built(topic: str) -> None:
    try:
        agent = topics.agent_in(topic, topics.UP)
    except topics.TopicError:
        return
    assert AGENT_ID.valid(agent) and topics.up(agent) == topic


@given(agent=NEAR_IDS)
def test_topics_are_only_built_from_valid_agent_ids(agent: str) -> None:
    for build in (topics.up, topics.ack, topics.state, topics.down):
        if by_the_words(AGENT_ID, agent):
            assert build(agent).split("/")[2] == agent
        else:
            with pytest.raises(IdentifierError):
                build(agent)


def test_the_gateway_subscription_needs_a_valid_share_group() -> None:
    assert topics.gateway_subscription() == "$share/county-gateway/edge/v1/+/up"
    for group in ("a/b", "+", "#", "", "county gw"):
        with pytest.raises(IdentifierError, match="share group"):
            topics.gateway_subscription(group)


# --- config and pairing use the same rules ----------------------------------------------


def _config(agent_id: str, device_id: str = "monitor-1") -> dict[str, object]:
    return {
        "agent": {"id": agent_id, "data_dir": "/tmp/edge-agent-test"},
        "uplink": {"broker": "mqtt://127.0.0.1:1883", "allow_insecure": True},
        "device": [{"id": device_id, "driver": "masimo-ascii", "port": "/dev/ttyUSB0"}],
    }


@pytest.mark.parametrize(
    ("agent_id", "device_id", "message"),
    [
        # `^...$` with re.match accepted a trailing newline: a topic level with "\n" in it
        ("amb-017\n", "monitor-1", r"config agent.id: 'amb-017\n' must be letters"),
        ("amb-017", "monitor-1\n", r"config device[0].id: 'monitor-1\n' must be letters"),
        ("..", "monitor-1", "config agent.id: '..' must start with a letter or a digit"),
        ("a" * 65, "monitor-1", "config agent.id: 'aaaa"),
    ],
)
def test_config_checks_ids_with_the_same_rules(agent_id: str, device_id: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.from_dict(_config(agent_id, device_id))
    (problem,) = caught.value.problems
    assert problem.startswith(message) and problem.isprintable()


@given(agent_id=NEAR_IDS.filter(lambda v: v.strip() != ""))
def test_config_accepts_an_agent_id_exactly_when_the_rule_says(agent_id: str) -> None:
    try:
        loaded = config.from_dict(_config(agent_id))
    except config.ConfigError as exc:
        assert not by_the_words(AGENT_ID, agent_id)
        assert all(p.startswith("config agent.id: ") for p in exc.problems)
        return
    assert by_the_words(AGENT_ID, agent_id) and loaded.agent.id == agent_id


def test_the_box_names_its_broker_session_with_a_checked_client_id() -> None:
    from sync.mqtt_link import LinkSettings, MqttLink

    settings = LinkSettings(host="127.0.0.1", port=1883, client_id="edge-agent-amb-017")
    assert MqttLink(settings, lambda event: None).settings.client_id == "edge-agent-amb-017"
    for client_id in ("edge agent", "edge-agent-amb/017", "", "x" * 129):
        bad = LinkSettings(host="127.0.0.1", port=1883, client_id=client_id)
        with pytest.raises(IdentifierError, match="MQTT client id"):
            MqttLink(bad, lambda event: None)
