"""A request from the control socket is checked against its fields (operations.checked):
JSON values of every kind, hostile ones included, give exactly the request the rules
below allow, or one usage error line.

The rules, written out here on their own (not by calling the code under test): a bool
is a bool only; an int is an int and not a bool; a float is a JSON number that is not a
bool and is finite (NaN, Infinity and an integer beyond any float are refused) and is
held as a float; text is a string of at most 1000 characters without NUL; a list field
is a JSON list within its bounds whose every item is of its item type; a missing or
null argument takes its default, or is refused when the field has none; an argument no
field has is refused.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_agent import operations
from edge_agent.control import OpError


@dataclass(frozen=True, slots=True)
class Sample:
    """A request with a field of every kind a request may have."""

    op: ClassVar[str] = "sample"
    text: str
    ratio: float
    count: int = 0
    flag: bool = False
    limit: float | None = None
    note: str | None = None
    words: tuple[str, ...] = field(default=(), metadata=operations.items(0, 3))
    numbers: list[float] = field(default_factory=list, metadata=operations.items(1, 2))
    ids: tuple[int, ...] = field(default=(), metadata=operations.items(0, 4))


REQUIRED = {"text", "ratio"}
DEFAULTS: dict[str, Any] = {
    "count": 0,
    "flag": False,
    "limit": None,
    "note": None,
    "words": (),
    "numbers": [],
    "ids": (),
}


def _is_text(v: object) -> bool:
    return type(v) is str and len(v) <= 1000 and "\x00" not in v


def _is_int(v: object) -> bool:
    return type(v) is int


def _is_float(v: object) -> bool:
    if type(v) is float:
        return v == v and v not in (math.inf, -math.inf)
    return type(v) is int and abs(v) <= sys.float_info.max


def _list_of(ok: Any, fewest: int, most: int) -> Any:
    return lambda v: type(v) is list and fewest <= len(v) <= most and all(ok(i) for i in v)


RULES: dict[str, tuple[Any, Any]] = {  # field -> (is it acceptable, what the request holds)
    "text": (_is_text, lambda v: v),
    "ratio": (_is_float, float),
    "count": (_is_int, lambda v: v),
    "flag": (lambda v: type(v) is bool, lambda v: v),
    "limit": (_is_float, float),
    "note": (_is_text, lambda v: v),
    "words": (_list_of(_is_text, 0, 3), tuple),
    "numbers": (_list_of(_is_float, 1, 2), lambda v: [float(i) for i in v]),
    "ids": (_list_of(_is_int, 0, 4), tuple),
}


def expected(args: dict[str, Any]) -> Sample | None:
    """The request the rules make of `args`, or None when they refuse it."""
    if set(args) - set(RULES):
        return None
    made: dict[str, Any] = {}
    for name, (ok, held) in RULES.items():
        value = args.get(name)
        if value is None:
            if name in REQUIRED:
                return None
            made[name] = DEFAULTS[name]
        elif not ok(value):
            return None
        else:
            made[name] = held(value)
    return Sample(**made)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**53 + 1])
    | st.floats()  # NaN and the infinities too: json.loads gives them from NaN, Infinity
    | st.text(max_size=6)
    | st.integers(min_value=998, max_value=1002).map(lambda n: "字" * n)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
texts = (
    st.text(max_size=6)
    | st.sampled_from(["", "\x00", "a\x00b"])
    | st.integers(min_value=998, max_value=1002).map(lambda n: "字" * n)
)
numbers = st.integers() | st.floats()
# Per field: mostly a value of its own kind (in bounds or near them), else any JSON.
FIELD_VALUES = {
    "text": texts,
    "ratio": numbers,
    "count": st.integers(),
    "flag": st.booleans(),
    "limit": numbers,
    "note": texts,
    "words": st.lists(texts, max_size=4),
    "numbers": st.lists(numbers, max_size=3),
    "ids": st.lists(st.integers() | st.booleans(), max_size=5),
}


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """Arguments of mostly the right kinds (NaN, long text, bools among ids, lists past
    their bounds included); one in four with one argument left out, or made any JSON
    value, or one that no field has."""
    required = {name: FIELD_VALUES[name] for name in REQUIRED}
    optional = {name: kind for name, kind in FIELD_VALUES.items() if name not in REQUIRED}
    args: dict[str, Any] = draw(st.fixed_dictionaries(required, optional=optional))
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from([*RULES, "extra", "op"]))
        if draw(st.booleans()):
            args[name] = draw(json_values)
        else:
            args.pop(name, None)
    return args


def _one_line(exc: OpError) -> bool:
    return exc.status == 2 and "\n" not in str(exc) and str(exc).startswith("sample: ")


@settings(max_examples=400, deadline=None)
@given(args=requests())
@example(args={"text": "t", "ratio": float("nan")})
@example(args={"text": "t", "ratio": 10**400})
@example(args={"text": "t", "ratio": True})
@example(args={"text": "t", "ratio": 1, "numbers": [1, 2.5]})
@example(args={"text": "t", "ratio": 1, "numbers": []})
@example(args={"text": "t", "ratio": 1, "words": ["a", 1]})
@example(args={"text": "t", "ratio": 1, "ids": [True]})
@example(args={"text": "t\x00", "ratio": 1})
@example(args={"text": "t", "ratio": 1, "words": ["\x00"]})
def test_checked_accepts_exactly_what_the_rules_allow(args: dict[str, Any]) -> None:
    sent = json.loads(json.dumps(args))  # as the socket carries it (NaN as NaN)
    want = expected(sent)
    if want is None:
        with pytest.raises(OpError) as refused:
            operations.checked(Sample, sent)
        assert _one_line(refused.value), str(refused.value)
        return
    got = operations.checked(Sample, sent)
    assert got == want
    assert type(got.ratio) is float and all(type(n) is float for n in got.numbers)
    assert type(got.words) is tuple and type(got.numbers) is list


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"days": True}, "days must be a finite number"),
        ({"days": float("inf")}, "days must be a finite number"),
        ({"days": "1"}, "days must be a finite number"),
        ({"previous_uncontrolled": 1.0}, "previous_uncontrolled must be a whole number"),
        ({"signs": "fever"}, "signs must be a list of texts of at most 1000 characters"),
        ({"signs": ["fever", 3]}, "signs must be a list of texts"),
        ({"signs": ["fever"] * 65}, "signs must be a list of texts .*, 0 to 64 of them"),
        ({"signs": ["x" * 1001]}, "signs must be a list of texts"),
    ],
)
def test_a_followup_request_is_checked_field_by_field(args: dict[str, Any], message: str) -> None:
    base = {"national_id": "11010519491231002X", "disease": "hypertension"}
    with pytest.raises(OpError, match=f"^followup: {message}") as refused:
        operations.checked(operations.FollowUp, json.loads(json.dumps({**base, **args})))
    assert refused.value.status == 2


def test_a_followup_request_goes_over_the_socket_and_back_unchanged() -> None:
    request = operations.FollowUp(
        national_id="11010519491231002X",
        disease="diabetes",
        signs=("fever", "sweating"),
        previous_uncontrolled=1,
        days=30.5,
    )
    sent = json.loads(json.dumps(operations.as_args(request)))
    assert sent["signs"] == ["fever", "sweating"]
    assert operations.checked(operations.FollowUp, sent) == request
    whole = operations.checked(operations.FollowUp, {**sent, "days": 7})
    assert whole.days == 7.0 and type(whole.days) is float
