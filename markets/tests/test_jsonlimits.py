"""The bounded JSON parser every form, command and socket uses for user JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from markets.jsonlimits import JsonLimitError, loads, loads_object, nesting_depth


def test_plain_json_parses_as_json_loads_does():
    text = '{"short": 5, "symbols": ["KRW-ETH", "KRW-XRP"], "w": 0.25, "on": true, "x": null}'
    assert loads(text) == json.loads(text)
    assert loads(b'[1, 2]') == [1, 2]


def test_deep_nesting_is_refused_without_recursion():
    with pytest.raises(JsonLimitError, match=r"Parameters nests .* more than 20 levels deep"):
        loads("[" * 50_000, what="Parameters")
    with pytest.raises(JsonLimitError, match="more than 3 levels"):
        loads('{"a": {"b": {"c": {}}}}', max_depth=3)
    # Brackets inside strings do not nest.
    assert loads('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', max_depth=1) == {"a": "[" * 30}
    assert nesting_depth('["\\"[[[", [[]]]') == 3


def test_size_nan_huge_numbers_and_bad_bytes_have_messages():
    with pytest.raises(JsonLimitError, match=r"Body is 70,000 bytes; at most 65,536"):
        loads(" " * 70_000, what="Body")
    with pytest.raises(JsonLimitError, match="NaN is not a JSON number"):
        loads('{"a": NaN}')
    with pytest.raises(JsonLimitError, match="too large a number"):
        loads("[1e999]")
    with pytest.raises(JsonLimitError, match="not JSON this site accepts"):
        loads("9" * 5000)
    with pytest.raises(JsonLimitError, match="not UTF-8"):
        loads(b"\xff\xfe[]")
    with pytest.raises(JsonLimitError, match=r"not valid JSON \(Expecting .* line 1, column 7"):
        loads('{"a": }')
    with pytest.raises(JsonLimitError, match="contains a NUL character"):
        loads('{"symbols": ["KRW-BTC\\u0000"]}')
    assert loads('["\\\\u0000"]') == ["\\u0000"]  # an escaped backslash, then text
    with pytest.raises(JsonLimitError, match=r"must be a JSON object, e.g. \{\"period\": 14\}"):
        loads_object("[5]")


HOSTILE = st.one_of(
    st.text(alphabet='[]{}",:0123456789.eE-+ntrufalsNIiy\\ \n', max_size=400),
    st.integers(1, 100_000).map(lambda n: "[" * n),
    st.integers(1, 30_000).map(lambda n: '{"a":' * n),
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                 max_leaves=30).map(json.dumps),
)


@settings(max_examples=200, deadline=None)
@given(HOSTILE)
def test_hostile_text_gives_a_value_or_a_json_limit_error(text):
    try:
        value = loads(text)
    except JsonLimitError as exc:
        assert str(exc)
        return
    assert json.loads(text) == value
    assert "\x00" not in json.dumps(value, ensure_ascii=False)


def test_the_form_field_turns_every_refusal_into_a_field_error():
    from django import forms

    from markets.admin_safety import BoundedJSONFormField

    class Form(forms.Form):
        params = BoundedJSONFormField()

    form = Form({"params": "[" * 50_000})
    assert not form.is_valid()
    assert "more than 20 levels deep" in form.errors["params"][0]
    assert "[[[[" in form.as_p()  # the typed text is shown back for correction
    assert Form({"params": '{"a": [1]}'}).is_valid()
