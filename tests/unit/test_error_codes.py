"""One table of error codes: every code the package can answer with is in
``clarion.errors.CODES``, and docs/errors.md shows exactly that table."""

from __future__ import annotations

import ast
from pathlib import Path

import clarion
from clarion import errors
from clarion.api.errors import _HTTP_CODES
from clarion.errors import CODES, ClarionError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(clarion.__file__).parent
BEGIN, END = "<!-- error table: begin -->", "<!-- error table: end -->"
#: Calls whose first string argument is an error code.
_CODE_CALLS = {"error_response", "_error_body"}


def _subclasses(cls: type[ClarionError]) -> list[type[ClarionError]]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def _literal_codes() -> dict[str, str]:
    """Every error code written as a literal in the package, with where."""
    found: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        where = str(path.relative_to(PACKAGE.parent))
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Assign)
                and [getattr(t, "id", None) for t in node.targets] == ["code"]
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)  # error codes are words, not numbers
            ) or (
                isinstance(node, ast.keyword)
                and node.arg == "code"
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found[node.value.value] = where
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "code"
                        and isinstance(value, ast.Constant)
                    ):
                        found[value.value] = where
            elif isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in _CODE_CALLS:
                    for arg in node.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                            found[arg.value] = where
                            break
    return found


def test_every_error_class_is_in_the_table_with_its_status() -> None:
    for cls in [ClarionError, *_subclasses(ClarionError)]:
        assert cls.code in CODES, f"{cls.__name__}.code {cls.code!r} is not in errors.CODES"
        assert CODES[cls.code].status == cls.status, cls


def test_every_code_written_in_the_package_is_in_the_table() -> None:
    found = _literal_codes()
    found.update({code: "api/errors.py _HTTP_CODES" for code in _HTTP_CODES.values()})
    assert {"validation_failed", "malformed_json", "payload_too_large"} <= set(found)
    missing = {code: where for code, where in found.items() if code not in CODES}
    assert not missing, f"codes raised but not in errors.CODES (and docs/errors.md): {missing}"


def _table() -> str:
    lines = ["| status | code | meaning | what to do |", "| --- | --- | --- | --- |"]
    for code, e in CODES.items():
        lines.append(f"| {e.status or '4xx'} | `{code}` | {e.meaning} | {e.action} |")
    return "\n".join(lines)


def test_docs_errors_md_shows_the_table() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == _table(), "docs/errors.md's table differs; it should read:\n" + _table()


def test_the_doc_link_names_the_code() -> None:
    assert errors.doc_link("rate_limited") == "/docs/errors#rate_limited"
