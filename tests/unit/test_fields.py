"""Reading a dotted ECS field (iiswatch.fields), the one accessor of events and alerts."""

from __future__ import annotations

from iiswatch.fields import get_field


def test_dotted_fields_are_read_from_nested_documents() -> None:
    assert get_field({"source": {"ip": "1.2.3.4"}}, "source.ip") == "1.2.3.4"
    assert get_field({"source": {}}, "source.ip") is None
    assert get_field({"source": "1.2.3.4"}, "source.ip") is None


def test_a_flat_dotted_key_is_read_as_the_same_field() -> None:
    assert get_field({"source.ip": "1.2.3.4"}, "source.ip") == "1.2.3.4"
