"""The qilian.receivable-event/1 record: validation, RFC 8785 bytes, record_hash, entry_id, leaf."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.ledger.records.canonical import (
    MAX_SAFE_INTEGER,
    SCHEMA,
    ReceivableEventRecord,
    canonical_json,
    entry_id,
    format_at,
    leaf_hash,
    new_salt,
    record_hash,
)
from services.ledger.records.keccak import to_hex

# The canonical text below was written by hand from RFC 8785 (keys sorted by UTF-16 code units, no
# whitespace, UTF-8 kept as is, only " \ and control characters escaped); the hashes were computed
# independently with Foundry's `cast keccak` 1.7.1 and checked with @openzeppelin/merkle-tree.
KNOWN_CANONICAL = (
    '{"actor":"org_00000000000000000000000000000003","at":"2025-01-31T09:30:00.000000Z",'
    '"data":{"amount":"1234.50","currency":"CNY","due_date":"2025-04-30",'
    '"lines":[{"qty":3,"sku":"A-1"},{"qty":-1,"sku":"B-2"}],"note":"上海 € \\"q\\"\\n",'
    '"paid":false,"ref":null},"event_id":"evt_00000000000000000000000000000001",'
    '"prev":"0xabababababababababababababababababababababababababababababababab",'
    '"receivable_id":"rcv_00000000000000000000000000000002",'
    '"salt":"0x1111111111111111111111111111111111111111111111111111111111111111",'
    '"schema":"qilian.receivable-event/1","seq":2,"type":"confirmed"}'
).encode()
KNOWN_RECORD_HASH = "0x96fb702eec6e8b8750d8733870406f32beda976a38eedce80fa56607c768e21a"
KNOWN_ENTRY_ID = "0x161e90d5160b903a26eb8e80911f6977f6a00c82e587be3216b66a0a8d59767f"
KNOWN_LEAF = "0xb8c97c13faa0f2921af98aaf9c4746e1f12e1092f086dbb35a96dfa0e783d517"


def known_fields() -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "event_id": "evt_00000000000000000000000000000001",
        "receivable_id": "rcv_00000000000000000000000000000002",
        "seq": 2,
        "type": "confirmed",
        "at": "2025-01-31T09:30:00.000000Z",
        "actor": "org_00000000000000000000000000000003",
        "data": {
            "ref": None,
            "paid": False,
            "note": '上海 € "q"\n',
            "lines": [{"sku": "A-1", "qty": 3}, {"sku": "B-2", "qty": -1}],
            "due_date": "2025-04-30",
            "currency": "CNY",
            "amount": "1234.50",
        },
        "prev": "0x" + "ab" * 32,
        "salt": "0x" + "11" * 32,
    }


def known_record() -> ReceivableEventRecord:
    return ReceivableEventRecord.model_validate(known_fields())


def refused(**changes: Any) -> str:
    fields = known_fields()
    fields.update(changes)
    with pytest.raises(ValidationError) as info:
        ReceivableEventRecord.model_validate(fields)
    return str(info.value)


# --- known answers ---------------------------------------------------------------------------


def test_known_record_has_the_known_canonical_bytes():
    assert canonical_json(known_record()) == KNOWN_CANONICAL


def test_known_record_has_the_known_record_hash():
    assert to_hex(record_hash(known_record())) == KNOWN_RECORD_HASH


def test_entry_id_is_keccak_of_the_utf8_event_id():
    assert to_hex(entry_id("evt_00000000000000000000000000000001")) == KNOWN_ENTRY_ID


def test_leaf_is_the_openzeppelin_double_hashed_standard_leaf():
    leaf = leaf_hash(entry_id(known_record().event_id), record_hash(known_record()))
    assert to_hex(leaf) == KNOWN_LEAF


def test_leaf_hash_refuses_values_that_are_not_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        leaf_hash(b"\x00" * 31, b"\x00" * 32)
    with pytest.raises(ValueError, match="32 bytes"):
        leaf_hash(b"\x00" * 32, b"\x00" * 33)


# --- shape of the record ---------------------------------------------------------------------


def test_schema_defaults_and_is_written_under_its_json_name():
    fields = known_fields()
    del fields["schema"]
    record = ReceivableEventRecord.model_validate(fields)
    assert record.model_dump()["schema"] == SCHEMA
    assert json.loads(record.model_dump_json())["schema"] == SCHEMA


def test_record_round_trips_through_its_canonical_json():
    record = known_record()
    again = ReceivableEventRecord.model_validate_json(canonical_json(record))
    assert again == record
    assert record_hash(again) == record_hash(record)


def test_record_is_immutable():
    record = known_record()
    with pytest.raises(ValidationError):
        record.seq = 3  # type: ignore[misc]


def test_data_is_copied_so_later_changes_to_the_input_do_not_change_the_hash():
    fields = known_fields()
    record = ReceivableEventRecord.model_validate(fields)
    before = record_hash(record)
    fields["data"]["lines"][0]["qty"] = 999
    fields["data"]["amount"] = "0.01"
    assert record_hash(record) == before


def test_unknown_top_level_field_is_refused():
    assert "Extra inputs are not permitted" in refused(extra="x")


def test_other_schema_is_refused():
    assert "qilian.receivable-event/1" in refused(schema="qilian.receivable-event/2")


@pytest.mark.parametrize(
    "data",
    [
        {"amount": 1234.5},
        {"amount": 1.0},
        {"lines": [{"qty": 0.5}]},
        {"deep": {"deeper": [[{"x": float("nan")}]]}},
        {"inf": float("inf")},
    ],
)
def test_floats_are_refused_anywhere_in_data(data):
    assert "floats are refused" in refused(data=data)


def test_floats_are_refused_when_parsing_json_too():
    text = json.dumps(known_fields()).replace('"qty": 3', '"qty": 3.0')
    with pytest.raises(ValidationError, match="floats are refused"):
        ReceivableEventRecord.model_validate_json(text)


def test_integers_beyond_the_json_safe_range_are_refused():
    assert "2**53" in refused(data={"n": MAX_SAFE_INTEGER + 1})
    assert "2**53" in refused(data={"n": -MAX_SAFE_INTEGER - 1})
    fields = known_fields()
    fields["data"] = {"n": MAX_SAFE_INTEGER, "m": -MAX_SAFE_INTEGER}
    ReceivableEventRecord.model_validate(fields)


@pytest.mark.parametrize(
    "value",
    [b"bytes", (1, 2), {1, 2}, datetime(2025, 1, 1, tzinfo=UTC), object()],
)
def test_values_that_are_not_plain_json_are_refused_in_data(value):
    assert "is not a JSON value" in refused(data={"x": value})


def test_non_string_keys_are_refused_in_data():
    assert "Input should be a valid string" in refused(data={1: "x"})
    assert "keys must be strings" in refused(data={"x": [{1: "y"}]})


def test_lone_surrogates_are_refused_in_data():
    assert "lone surrogate" in refused(data={"x": "\ud800"})


def test_too_deep_data_is_refused():
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    assert "nested deeper" in refused(data={"x": deep})


@pytest.mark.parametrize("seq", [0, -1, True, "2", 2.0])
def test_seq_must_be_a_positive_integer(seq):
    refused(seq=seq)


def test_prev_must_be_null_exactly_for_the_first_event():
    assert "prev must be null exactly when seq is 1" in refused(seq=1)
    assert "prev must be null exactly when seq is 1" in refused(prev=None)
    fields = known_fields()
    fields.update(seq=1, prev=None)
    ReceivableEventRecord.model_validate(fields)


@pytest.mark.parametrize(
    "value",
    [
        "0x" + "AB" * 32,
        "ab" * 32,
        "0x" + "ab" * 31,
        "0x" + "ab" * 33,
        "0x" + "ab" * 31 + "zz",
        "0x" + "ab" * 32 + "\n",
    ],
)
def test_salt_and_prev_must_be_prefixed_lowercase_32_byte_hex(value):
    assert "64 lowercase hex digits" in refused(salt=value)
    assert "64 lowercase hex digits" in refused(prev=value)


@pytest.mark.parametrize(
    "value",
    [
        "2025-01-31T09:30:00+00:00",
        "2025-01-31T09:30:00z",
        "2025-01-31 09:30:00Z",
        "2025-01-31T09:30Z",
        "2025-01-31T09:30:00.1234567890Z",
        "2025-02-30T09:30:00Z",
        "2025-01-31T24:00:00Z",
        "2025-01-31T09:30:60Z",
        "２０２５-01-31T09:30:00Z",
    ],
)
def test_at_must_be_a_real_rfc3339_utc_timestamp_with_z(value):
    refused(at=value)


@pytest.mark.parametrize(
    "value", ["2025-01-31T09:30:00Z", "2025-01-31T09:30:00.5Z", "2025-01-31T09:30:00.123456789Z"]
)
def test_at_keeps_the_exact_text_it_was_given(value):
    fields = known_fields()
    fields["at"] = value
    assert ReceivableEventRecord.model_validate(fields).at == value


def test_at_from_an_aware_datetime_is_written_in_utc_with_microseconds():
    fields = known_fields()
    fields["at"] = datetime(2025, 1, 31, 17, 30, 0, 5, tzinfo=timezone(timedelta(hours=8)))
    assert ReceivableEventRecord.model_validate(fields).at == "2025-01-31T09:30:00.000005Z"


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        format_at(datetime(2025, 1, 31, 9, 30))


@pytest.mark.parametrize("field", ["event_id", "receivable_id", "actor"])
@pytest.mark.parametrize("value", ["", " evt_1", "evt 1", "évt_1", "-evt", "x" * 129])
def test_identifiers_are_short_ascii_tokens(field, value):
    refused(**{field: value})


@pytest.mark.parametrize("value", ["0x1234", "0Xabc"])
def test_event_id_may_not_look_like_hex_to_cast(value):
    assert "must not start with 0x" in refused(event_id=value)


@pytest.mark.parametrize("value", ["Created", "offer-accepted", "1st", "", "a" * 65])
def test_event_type_is_lower_snake_case(value):
    refused(type=value)


def test_new_salt_is_32_random_bytes_in_lowercase_hex():
    salts = {new_salt() for _ in range(100)}
    assert len(salts) == 100
    for salt in salts:
        assert len(salt) == 66
        assert salt.startswith("0x")
        assert salt[2:] == salt[2:].lower()
        bytes.fromhex(salt[2:])


def test_different_salts_give_different_hashes_for_the_same_event():
    fields = known_fields()
    first = ReceivableEventRecord.model_validate({**fields, "salt": new_salt()})
    second = ReceivableEventRecord.model_validate({**fields, "salt": new_salt()})
    assert record_hash(first) != record_hash(second)


# --- properties ------------------------------------------------------------------------------

json_keys = st.text(max_size=12)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(json_keys, children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(json_keys, json_values, max_size=6)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys in a random insertion order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


@settings(max_examples=200)
@given(data=json_objects, seed=st.integers())
def test_canonical_bytes_do_not_depend_on_key_order(data, seed):
    rng = random.Random(seed)
    fields = {**known_fields(), "data": data}
    first = ReceivableEventRecord.model_validate(fields)
    second = ReceivableEventRecord.model_validate(shuffled(fields, rng))
    assert canonical_json(first) == canonical_json(second)
    assert record_hash(first) == record_hash(second)


@settings(max_examples=200)
@given(data=json_objects)
def test_canonical_bytes_parse_back_to_the_same_record(data):
    record = ReceivableEventRecord.model_validate({**known_fields(), "data": data})
    text = canonical_json(record)
    assert json.loads(text) == record.model_dump()
    assert ReceivableEventRecord.model_validate_json(text) == record


@settings(max_examples=200)
@given(data=json_objects, value=st.text(min_size=1, max_size=5))
def test_any_change_to_data_changes_the_record_hash(data, value):
    assume(data.get("\x00changed") != value)
    record = ReceivableEventRecord.model_validate({**known_fields(), "data": data})
    changed_data = {**data, "\x00changed": value}
    changed = ReceivableEventRecord.model_validate({**known_fields(), "data": changed_data})
    assert record_hash(changed) != record_hash(record)


@settings(max_examples=100)
@given(data=json_objects, number=st.floats(allow_nan=True, allow_infinity=True), seed=st.integers())
def test_a_float_planted_anywhere_in_data_is_refused(data, number, seed):
    rng = random.Random(seed)
    planted: dict[str, Any] = {"root": data}
    target: Any = planted
    key: Any = "root"
    # walk down a random path of objects and lists, then plant the float there
    while isinstance(target[key], dict | list) and target[key] and rng.random() < 0.7:
        target = target[key]
        key = rng.choice(list(target)) if isinstance(target, dict) else rng.randrange(len(target))
    target[key] = number
    with pytest.raises(ValidationError, match="floats are refused"):
        ReceivableEventRecord.model_validate({**known_fields(), "data": planted})
