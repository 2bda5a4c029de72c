"""Hostile templates fail fast, in small memory, with ``template_invalid``.

Each template below would, in an unbounded Jinja2 sandbox, allocate gigabytes or run for
minutes in one uninterruptible operation (``tojson(indent=10**9)`` built a 1 GB string
before the output limit was looked at). The sandbox must refuse each one *before* the
expensive operation runs, or stop it while it produces output. Time is measured as this
thread's CPU time, so a busy machine does not fail the test; wall time has 5x slack.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from clarion.domain.rendering import (
    MAX_TOKENS,
    WALL_FACTOR,
    RenderError,
    compile_template,
    count_tokens,
    render,
    template_variables,
)
from clarion.domain.sandbox.engine import environment
from clarion.domain.sandbox.limits import MAX_JSON_INDENT
from clarion.errors import TemplateInvalid

VARS = template_variables(
    data={"a": [1, 2, 3], "nested": {"b": [{"c": "d"}]}, "text": "see https://example.com"},
    user={"name": "Bo"},
    notification={"type": "t"},
)

BIG = "{% set x = 'a' * 200000 %}"

ATTACKS = {
    "tojson_indent": "{{ data|tojson(indent=1000000000) }}",
    "tojson_indent_string": "{{ data|tojson(indent='x' * 100000) }}",
    "tojson_deep_nesting": "{% set ns = namespace(x=[]) %}{% for i in range(500) %}"
    "{% set ns.x = [ns.x, 1] %}{% endfor %}{{ ns.x|tojson(indent=16) }}",
    "tojson_escaping": "{{ ('<' * 250000)|tojson }}",
    "percent_width": "{{ '%999999999s'|format(1) }}",
    "percent_operator_width": "{{ '%999999999s' % 1 }}",
    "percent_star_width": "{{ '%*s' % (999999999, 1) }}",
    "percent_precision": "{{ '%.999999999f' % 1 }}",
    "percent_repeated_mapping": "{{ ('%(a)s' * 40000) % {'a': 'x' * 1000} }}",
    "format_repeated_mapping": "{{ ('%(a)s' * 40000)|format(a='x' * 1000) }}",
    "bytes_percent": "{{ '%999999999s'.encode() % (1,) }}",
    "center": "{{ 'a'|center(1000000000) }}",
    "indent": "{{ 'a\nb'|indent(1000000000) }}",
    "indent_string": "{{ ('a\n' * 100000)|indent('x' * 1000) }}",
    "wordwrap_wrapstring": "{{ ('a ' * 30000)|wordwrap(1, wrapstring='x' * 100000) }}",
    "wordwrap_long_input": "{{ ('a ' * 100000)|wordwrap(1) }}",
    "truncate_concat": "{{ ('a' * 200000)|truncate(10**9) ~ ('y' * 100000) }}",
    "str_multiplication": "{{ 'a' * 10**9 }}",
    "list_multiplication": "{{ [1] * 10**9 }}",
    "multiplication_reversed": "{{ 10**9 * 'a' }}",
    "range": "{{ range(10**9)|list }}",
    "range_loop": "{% for i in range(10**9) %}{% endfor %}",
    "join_generated": "{{ ([('a' * 60000)] * 10000)|join }}",
    "str_join": "{{ ('a' * 60000).join(['x'] * 10000) }}",
    "replace_amplification": "{{ ('a' * 200000)|replace('a', 'aaaa') }}",
    "str_replace_empty": "{{ ('ab' * 30000).replace('', 'x' * 100) }}",
    "bytes_replace": "{{ ('a' * 200000).encode().replace('a'.encode(), ('x' * 10).encode()) }}",
    "translate": "{{ 'aaaa'.translate({97: 'x' * 200000}) }}",
    "expandtabs": "{{ ('\t' * 60000).expandtabs(100) }}",
    "ljust": "{{ 'a'.ljust(10**9) }}",
    "bytes_ljust": "{{ 'a'.encode().ljust(10**9) }}",
    "zfill": "{{ '1'.zfill(10**9) }}",
    "to_bytes": "{{ (1).to_bytes(10**9, 'big') }}",
    "for_nesting_output": "{% for a in range(10000) %}{% for b in range(10000) %}"
    "{{ a }}{% endfor %}{% endfor %}",
    "for_nesting_4": "{% for a in range(100) %}{% for b in range(100) %}{% for c in range(100) %}"
    "{% for d in range(100) %}x{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
    "set_block_capture": "{% set x %}{% for i in range(10000) %}{{ 'a' * 60000 }}"
    "{% endfor %}{% endset %}",
    "doubling": "{% set ns = namespace(x='a' * 60000) %}{% for i in range(100) %}"
    "{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
    "list_doubling": "{% set ns = namespace(x=['a' * 1000]) %}{% for i in range(100) %}"
    "{% set ns.x = ns.x + ns.x %}{% endfor %}",
    "list_literal_by_reference": BIG + "{% set y = [x, x, x, x, x, x, x, x, x, x] %}"
    "{% set z = [y, y, y, y, y, y, y, y, y, y] %}{{ [z, z, z, z, z, z, z, z, z, z] }}",
    "dict_literal_by_reference": BIG + "{{ {'a': x, 'b': x, 'c': x, 'd': x, 'e': x}|tojson }}",
    "tuple_literal_by_reference": BIG + "{{ (x, x, x, x, x, x, x, x, x, x)|string }}",
    "cycler_arguments": BIG + "{{ cycler(x, x, x, x, x, x, x, x, x, x).items }}",
    "list_filter": "{{ ('a' * 250000)|list|length }}",
    "batch": "{{ [1]|batch(10**9, 0)|list }}",
    "batch_fill": "{{ range(1)|batch(10000, 'x' * 100000)|list }}",
    "slice": "{{ [1]|slice(10**9)|list }}",
    "sum_lists": "{{ ([[1] * 100] * 100)|sum(start=[]) }}",
    "lipsum": "{{ lipsum(10**9) }}",
    "macro_recursion": "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
    "macro_exponential": "{% macro m(n) %}{% if n < 40 %}{{ m(n + 1) }}{{ m(n + 1) }}"
    "{% endif %}x{% endmacro %}{{ m(0) }}",
    "recursive_loop": "{% for x in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}",
    "pprint_large": "{{ range(10000)|list|pprint }}",
    "pprint_deep": "{% set ns = namespace(x=[]) %}{% for i in range(500) %}"
    "{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|pprint }}",
    "urlize_target": "{{ ('a.com ' * 2000)|urlize(target='x' * 60000) }}",
    "urlize_long_input": "{{ ('a.com ' * 40000)|urlize }}",
    "wordcount_long_input": "{{ ('a ' * 120000)|wordcount }}",
    "title_long_input": "{{ ('a ' * 120000)|title }}",
    "striptags_long_input": "{{ ('<a> ' * 60000)|striptags }}",
    "pow": "{{ 10 ** (10 ** 9) }}",  # Jinja's ** groups left: 10**10**9 is small
    "pow_grown": "{{ 2 ** 5000 }}",
    "big_int_multiplication": "{{ (2 ** 2000) * (2 ** 2000) * (2 ** 2000) }}",
    "round_ceil": "{{ 1.5|round(10**9, 'ceil') }}",
    "round_floor": "{{ 1.5|round(-10**9, 'floor') }}",
    "filesizeformat": "{{ (10 ** 1000)|filesizeformat }}",
    "output_limit": "{% for i in range(1000) %}{{ 'a' * 100 }}{% endfor %}",
    "unique_large": "{{ range(10000)|list|unique|list|unique|list|length * ('a' * 10**9) }}",
}


def attempt(source: str) -> TemplateInvalid:
    with pytest.raises(TemplateInvalid) as info:
        render(compile_template({"in_app.message": source}), VARS)
    return info.value


@pytest.mark.parametrize("source", list(ATTACKS.values()), ids=list(ATTACKS))
def test_hostile_template_fails_fast_in_small_memory(source: str) -> None:
    tracemalloc.start()
    try:
        error = attempt(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "template_invalid"
    assert isinstance(error, RenderError), error  # it compiled: the attack really ran
    assert error.details and error.details[0]["field"] == "in_app.message", error.details
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"

    cpu, wall = time.thread_time(), time.monotonic()
    attempt(source)
    cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
    assert cpu < 1.0, f"{cpu:.2f} s of CPU"
    assert wall < 5.0, f"{wall:.2f} s"


def test_hostile_render_is_a_render_error_naming_the_limit() -> None:
    error = attempt(ATTACKS["tojson_indent"])
    assert isinstance(error, RenderError)
    assert error.details == [
        {
            "field": "in_app.message",
            "problem": f"tojson() indent is limited to {MAX_JSON_INDENT}",
        }
    ]


def test_output_limit_is_enforced_while_streaming() -> None:
    """A template that prints forever stops at the output limit: the parts it printed are
    never joined into one string past the limit."""
    source = (
        "{% for i in range(10000) %}{% for j in range(10000) %}{{ 'a' * 1000 }}"
        "{% endfor %}{% endfor %}"
    )
    started = time.monotonic()
    with pytest.raises(RenderError, match=r"longer than|too much output"):
        render(compile_template({"sms.text": source}), {}, timeout=30)
    assert time.monotonic() - started < 5.0


def test_the_deadline_holds_inside_python_level_filters() -> None:
    """``unique`` over a long list loops in Python: it ticks per item, so a short deadline
    stops it rather than letting it run to the end."""
    source = "{% for i in range(1000) %}{{ range(10000)|list|unique|list|length }}{% endfor %}"
    started = time.thread_time()
    with pytest.raises(RenderError, match=r"too long|too much work"):
        render(compile_template({"sms.text": source}), {}, timeout=0.05)
    assert time.thread_time() - started < 1.0


BOUNDED_BUT_FINE = [
    ("{{ data.nested|tojson(indent=2) }}", '{\n  "b": [\n    {\n      "c": "d"\n    }\n  ]\n}'),
    ("{{ data.nested|tojson }}", '{"b": [{"c": "d"}]}'),
    ("{{ '<a>'|tojson }}", '"\\u003ca\\u003e"'),
    ("{{ data.a|pprint }}", "[1, 2, 3]"),
    (
        "{{ data.text|urlize }}",
        'see <a href="https://example.com" rel="noopener">https://example.com</a>',
    ),
    ("{{ 2.345|round(2, 'floor') }} {{ 2.345|round(1) }}", "2.34 2.3"),
    ("{{ 'a b c'|wordcount }} {{ 'a b'|title }} {{ '<b>x</b>'|striptags }}", "3 A B x"),
    (
        "{{ '%-5s|%3d|%.2f'|format('a', 1, 2.5) }} {{ '%(n)s!' % {'n': 'hi'} }}",
        "a    |  1|2.50 hi!",
    ),
    ("{{ 'x'|center(5) }}|{{ 'ab'.ljust(4) }}|{{ '7'.zfill(3) }}", "x  |ab  |007"),
    ("{{ [1, 2, 3]|batch(2)|list }} {{ [1, 2, 3]|slice(2)|list }}", "[[1, 2], [3]] [[1, 2], [3]]"),
    ("{{ [3, 1, 3]|unique|list }} {{ [1, 2]|map('string')|join(',') }}", "[3, 1] 1,2"),
    ("{{ 'a-b'.replace('-', '+') }} {{ (1).to_bytes(2, 'big')|length }}", "a+b 2"),
    ("{{ 1000000|filesizeformat }} {{ 2 ** 64 }}", "1.0 MB 18446744073709551616"),
    ("{% set c = cycler('odd', 'even') %}{{ c.next() }}{{ c.next() }}", "oddeven"),
    ("{{ {'a': [1, (2, 3)]} }}", "{'a': [1, (2, 3)]}"),
    ("{% for a, b in [(1, 2)] %}{{ a }}{{ b }}{% endfor %}", "12"),
]


@pytest.mark.parametrize(("source", "expected"), BOUNDED_BUT_FINE)
def test_the_bounded_filters_still_do_their_job(source: str, expected: str) -> None:
    assert render(compile_template({"sms.text": source}), VARS)["sms.text"] == expected


def test_compiling_is_bounded_by_tokens() -> None:
    """Compiling cannot be interrupted (compile() of the generated module is one C call),
    so a part with too many tokens is refused before it is parsed, fast."""
    fits = "{{ a }}" * (MAX_TOKENS // 5)
    assert count_tokens(fits) <= MAX_TOKENS
    compile_template({"sms.text": fits})
    started = time.thread_time()
    with pytest.raises(TemplateInvalid) as info:
        compile_template({"sms.text": "{{ a }}" * 9000})  # 63 KB, under the size limit
    assert time.thread_time() - started < 1.0
    assert info.value.details == [{"field": "sms.text", "problem": f"at most {MAX_TOKENS} tokens"}]


FILTERS = sorted(name for name in environment(autoescape=False).filters if ":" not in name)
# Values each filter is tried on: a long string, a long list, a dict, a number.
SUBJECTS = ["('ab ' * 20000)", "range(10000)|list", "{'a': 'x' * 1000, 'b': [1, 2]}", "7"]
HUGE_ARGUMENTS = ["10**9", "10**9, 10**9", "10**9, 10**9, 10**9", "'x' * 200000, 10**9"]


@pytest.fixture(scope="module", autouse=True)
def _frozen_heap() -> Iterator[None]:
    """Everything alive before these tests moves out of the collector's sight: late in a
    full run the heap holds millions of objects, and each test's ``gc.collect()`` would
    walk them all (seconds per test), for nothing these tests allocate."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("name", FILTERS)
def test_no_filter_argument_makes_a_filter_allocate_or_run_long(name: str) -> None:
    """Every filter, on large and small values, with huge numeric (and long string)
    arguments in every position: it renders something small or is a ``RenderError``,
    fast and in small memory. A filter added to Jinja later is covered too.

    The collector stays out of the measure: late in a full run the heap is big, and one
    traced full collection costs seconds that are not the filter's."""
    gc.collect()
    gc.disable()
    try:
        _check_filter(name)
    finally:
        gc.enable()


def _check_filter(name: str) -> None:
    for subject in SUBJECTS:
        for arguments in HUGE_ARGUMENTS:
            source = f"{{{{ ({subject})|{name}({arguments}) }}}}"
            tracemalloc.start()
            cpu = time.thread_time()
            try:
                out = render(compile_template({"sms.text": source}), VARS)["sms.text"]
            except RenderError:
                out = ""
            finally:
                cpu = time.thread_time() - cpu
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            assert len(out) <= 65536, source
            assert peak < 50 * 1024 * 1024, f"{source}: peak {peak / 1e6:.1f} MB"
            assert cpu < 1.0, f"{source}: {cpu:.2f} s of CPU"


METHOD_OWNERS = {
    "('ab\t' * 20000)": str,
    "('ab\t' * 20000).encode()": bytes,
    "12345": int,
    "1.5": float,
    "(range(10000)|list)": list,
    "{'a': 1}": dict,
}


@pytest.mark.parametrize(
    ("owner", "name"),
    [(o, n) for o, t in METHOD_OWNERS.items() for n in dir(t) if not n.startswith("_")],
)
def test_no_method_argument_makes_a_builtin_allocate_or_run_long(owner: str, name: str) -> None:
    """Every public method of the builtin values a template can hold, with huge numeric and
    long string arguments: small output or a ``RenderError``, fast, in small memory."""
    for arguments in ["", "10**9", "10**9, 10**9", "'x' * 100000", "'ab', 'x' * 100000"]:
        source = f"{{{{ {owner}.{name}({arguments}) }}}}"
        tracemalloc.start()
        cpu = time.thread_time()
        try:
            out = render(compile_template({"sms.text": source}), VARS)["sms.text"]
        except RenderError:
            out = ""
        finally:
            cpu = time.thread_time() - cpu
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert len(out) <= 65536, source
        assert peak < 50 * 1024 * 1024, f"{source}: peak {peak / 1e6:.1f} MB"
        assert cpu < 1.0, f"{source}: {cpu:.2f} s of CPU"


OPERANDS = [
    "('%s%%(a)s' * 20000)",
    "('ab' * 60000)",
    "(range(10000)|list)",
    "{'a': 'x' * 100000}",
    "10**9",
    "(2 ** 2000)",
    "1e300",
    "((1, 2) * 1000)",
]


@pytest.mark.parametrize("operator", ["*", "**", "+", "-", "%", "//", "/", "~"])
def test_no_operator_allocates_or_runs_long(operator: str) -> None:
    """Every operator on every pair of large operands: small output or a ``RenderError``."""
    for left in OPERANDS:
        for right in OPERANDS:
            source = f"{{{{ ({left} {operator} {right})|length }}}}"
            tracemalloc.start()
            cpu = time.thread_time()
            try:
                render(compile_template({"sms.text": source}), VARS)
            except RenderError:
                pass
            finally:
                cpu = time.thread_time() - cpu
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            assert peak < 50 * 1024 * 1024, f"{source}: peak {peak / 1e6:.1f} MB"
            assert cpu < 1.0, f"{source}: {cpu:.2f} s of CPU"


def test_the_time_limit_counts_cpu_time_not_waiting() -> None:
    """A render that waits (here in a sleep; on a loaded machine, for a core or for the
    interpreter lock) spends no CPU time, so it is not cut off at 200 ms of wall time:
    legitimate templates must not fail because the machine is busy. A render starved for
    far longer than its allowance still ends, at ``WALL_FACTOR`` times it."""

    def wait() -> str:
        time.sleep(0.15)
        return "w"

    waiting = compile_template({"sms.text": "{{ wait() }}{{ wait() }}{{ wait() }}"})
    assert render(waiting, {"wait": wait}, timeout=0.2)["sms.text"] == "www"  # 0.45 s wall

    started = time.monotonic()
    with pytest.raises(RenderError, match="too long"):
        render(waiting, {"wait": wait}, timeout=0.2 / WALL_FACTOR)  # 0.2 s of wall time
    assert time.monotonic() - started < 5.0
