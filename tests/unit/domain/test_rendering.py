"""Stored templates: compile errors name the part, the sandbox holds, limits end renders fast."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clarion.domain.rendering import (
    CompiledTemplate,
    RenderError,
    choose_locale,
    compile_template,
    render,
    template_variables,
)
from clarion.errors import TemplateInvalid, ValidationFailed

VARS = template_variables(
    data={"actor": "Ana <b>", "items": [{"name": "a"}, {"name": "b"}], "n": 3},
    user={"name": "Bo", "locale": "pt-BR"},
    notification={"type": "follow", "title": "New follower"},
)


def test_renders_each_part_and_escapes_html_only() -> None:
    compiled = compile_template(
        {
            "in_app.title": "{{ notification.title }}",
            "email.html": "<p>{{ data.actor }} followed {{ user.name }}</p>",
            "email.text": "{{ data.actor }} followed {{ user.name }}",
            "sms.text": "{% for i in data['items'] %}{{ i.name }}"
            "{% if not loop.last %},{% endif %}{% endfor %}",
        }
    )
    out = render(compiled, VARS)
    assert out == {
        "in_app.title": "New follower",
        "email.html": "<p>Ana &lt;b&gt; followed Bo</p>",
        "email.text": "Ana <b> followed Bo",
        "sms.text": "a,b",
    }


def test_ordinary_features_still_work() -> None:
    src = (
        "{% macro b(x) %}[{{ x|upper }}]{% endmacro %}{{ b('hi') }} {{ data.n * 2 }} "
        "{{ 'x' ~ data.n }} {{ data['items']|map(attribute='name')|join('-') }} "
        "{{ '%d%%'|format(5) }} {{ range(3)|sum }} {{ missing|default('d') }} {{ 'ab'.upper() }}"
    )
    out = render(compile_template({"push.body": src}), VARS)["push.body"]
    assert out == "[HI] 6 x3 a-b 5% 3 d AB"


@pytest.mark.parametrize(
    ("part", "source"),
    [
        ("in_app.title", "{{ oops"),
        ("email.text", "{% for x in y %}"),
        ("sms.text", "{{ x|no_such_filter }}"),
        ("push.body", "{% include 'other.html' %}"),
        ("push.body", "{% extends 'base.html' %}"),
        ("push.body", "{% import 'm.html' as m %}"),
    ],
)
def test_compile_errors_name_the_part(part: str, source: str) -> None:
    with pytest.raises(TemplateInvalid) as info:
        compile_template({"in_app.message": "fine", part: source})
    assert [d["field"] for d in info.value.details] == [part]


def test_unknown_part_and_empty_template() -> None:
    with pytest.raises(TemplateInvalid) as info:
        compile_template({"fax.body": "x"})
    assert info.value.details[0]["field"] == "fax.body"
    with pytest.raises(TemplateInvalid):
        compile_template({})
    with pytest.raises(TemplateInvalid):
        compile_template({"sms.text": "x" * (64 * 1024 + 1)})


ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ x|attr('format') }}",
    "{{ ''.format }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__ }}",
    "{{ data.__class__ }}",
    "{{ data['__class__'] }}",
    "{{ ''|attr('__class__') }}",
    "{{ {}.fromkeys(range(10), 1) }}",
    "{{ data['items'].append(1) }}",
    "{{ lipsum(10**9) }}",
]

BOMBS = [
    "{% for i in range(10**9) %}{% endfor %}",
    "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
    "{% for a in range(100) %}{% for b in range(100) %}{% for c in range(100) %}"
    "{% for d in range(100) %}{{ a }}{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
    "{% for a in 'x' * 60000 %}{% for b in 'x' * 60000 %}{% endfor %}{% endfor %}",
    "{{ 'a' * 10**9 }}",
    "{{ (1,) * 10**9 }}",
    "{{ 10 ** 100000 }}",
    "{{ 'a'|center(10**9) }}",
    "{{ 'a'.ljust(10**9) }}",
    "{{ 'a'.zfill(10**9) }}",
    "{{ 'x'|indent(10**9) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%0999999999d'|format(1) }}",
    "{{ ('a' * 60000)|replace('a', 'aaaa') }}",
    "{{ ('ab' * 30000).replace('', 'x' * 100) }}",
    "{{ ('\t' * 60000).expandtabs(100) }}",
    "{{ ([('a' * 60000)] * 10000)|join }}",
    "{{ (('a' * 60000)).join(['x'] * 10000) }}",
    "{{ [[1] * 10000] * 10000|sum(start=[]) }}",
    "{{ [1]|batch(10**9, 0)|list }}",
    "{{ [1]|slice(10**9)|list }}",
    "{% set ns = namespace(x='a' * 60000) %}{% for i in range(100) %}"
    "{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
    "{% set ns = namespace(x=['a' * 1000]) %}{% for i in range(100) %}"
    "{% set ns.x = ns.x + ns.x %}{% endfor %}",
    "{% set x %}{% for i in range(10000) %}{{ 'a' * 60000 }}{% endfor %}{% endset %}",
    "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
    "{% macro m(n) %}{% if n < 30 %}{{ m(n + 1) }}{{ m(n + 1) }}{% endif %}{% endmacro %}"
    "{{ m(0) }}",
    "{% for i in range(10000) %}{{ 'a' * 100 }}{% endfor %}",
]


@pytest.mark.parametrize("source", ESCAPES + BOMBS)
def test_escapes_and_bombs_fail_cleanly_and_fast(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateInvalid) as info:
        render(compile_template({"in_app.message": source}), {**VARS, "x": "a"})
    assert isinstance(info.value, RenderError)
    assert info.value.details[0]["field"] == "in_app.message"
    assert time.monotonic() - started < 2.0


def test_timeout_is_enforced_inside_the_sandbox() -> None:
    slow = compile_template(
        {"sms.text": "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}"}
    )
    started = time.monotonic()
    with pytest.raises(RenderError, match="too"):
        render(slow, {}, timeout=0.01)
    assert time.monotonic() - started < 0.5


def test_compiled_template_reports_its_parts() -> None:
    compiled = compile_template({"sms.text": "a", "in_app.title": "b"})
    assert isinstance(compiled, CompiledTemplate)
    assert compiled.parts == ("in_app.title", "sms.text")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_sources_never_raise_anything_but_template_invalid(source: str) -> None:
    with contextlib.suppress(TemplateInvalid):
        render(compile_template({"email.html": source}), VARS)


@pytest.mark.parametrize(
    ("available", "wanted", "expected"),
    [
        (["en", "pt", "pt-BR"], "pt-BR", "pt-BR"),
        (["en", "pt"], "pt-BR", "pt"),
        (["en", "pt_br"], "PT-br", "pt_br"),
        (["en", "pt-PT"], "pt-BR", "pt-PT"),
        (["en", "es"], "de", "en"),
        (["en-GB", "es"], "de", "en-GB"),
        (["fr", "es"], "de", "es"),
        (["fr", "es"], None, "es"),
        (["en", "es"], None, "en"),
    ],
)
def test_choose_locale(available: list[str], wanted: str | None, expected: str) -> None:
    assert choose_locale(available, wanted) == expected


def test_choose_locale_needs_a_variant() -> None:
    with pytest.raises(ValidationFailed):
        choose_locale([], "en")
