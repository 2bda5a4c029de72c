"""The fenced examples of README.md and docs/*.md, and the rules that make them tests.

``tests/e2e/test_docs_examples.py`` runs every example against a real ``clarion serve``
(one server with a fresh SQLite database per file; a file's examples run in file order,
so a page may build on its earlier examples: ids start at 1 on every page).

What runs, by the fence's language:

- ``sh`` / ``bash``: run with ``bash`` (``set -eo pipefail``) with ``KEY`` (an API key),
  ``API`` (``<base>/api/v1``), ``CLARION`` (the base URL) and ``TOKEN`` (also
  ``USER_TOKEN``: a user token) in the environment. ``curl`` answers with a status >= 400
  fail the example, and every ``curl`` goes to the test server whatever host it names.
  A comment line ``# -> <JSON>`` (continued on following ``#`` lines
  while the JSON is incomplete, optionally ``# -> 202 <JSON>``) right after a ``curl``
  says what that call printed, and is checked (see "Comparing" below).
- ``json``: must parse (a leading status, ``202 {...}``, means "a response with this
  status"). With ``request METHOD PATH`` it is sent as that request's body (with the API
  key, or the token of the ``user`` directive) and must be answered 2xx; with
  ``response`` it is compared with the answer to the file's previous ``request`` block.
- ``python``: run with the project's Python, ``KEY`` and ``TOKEN`` defined as globals,
  20 s at most, and must exit 0 without the server answering any request >= 400.
- ``js``, ``jinja``, ``text`` and unlabelled blocks are not run.

Placeholders are replaced before a block runs: ``clk_...``/``clk_…`` by the key,
``eyJ...``/``eyJ…`` by a token of the block's user, ``127.0.0.1:8000`` and
``localhost:8000`` by the test server's address.

Directives: an HTML comment on the line(s) right before the fence,
``<!-- example: DIRECTIVE -->`` (several per comment separated by ``;``):

- ``skip "REASON"``: not run (a fragment, a transcript, a deployment recipe); the reason
  is required and shown in the test report.
- ``request METHOD PATH [STATUS]`` (json): send the block; expect STATUS (default 2xx).
- ``response`` (json): the block is the answer to the previous ``request`` block.
- ``status STATUS`` (sh): the example shows an error on purpose: a ``curl`` answering
  STATUS does not fail it, and at least one must.
- ``user USER_ID``: ``TOKEN``, ``eyJ...`` and a ``request`` act for this user
  (default: ``ana``, and a ``request`` uses the API key).
- ``runs-until-stopped`` (python): a listener; it passes when it keeps running while a
  notification is sent to its user and prints that notification's title.

Comparing a shown answer with the real one (``# ->`` lines, ``response`` blocks): the same
keys, recursively, and equal values, except that

- ``"..."`` or ``"…"`` stands for any value, and a string ending in it for any string
  starting with what comes before (``"eyJ..."``);
- a key ``"..."`` (``"...": "..."``) says the object has more keys than shown;
- timestamps (keys ending in ``_at``, and ``ts``) and ``token`` need only the same type
  (``null`` stays ``null``) unless shown with an ellipsis;
- lists have the same length and are compared item by item.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUN_LANGUAGES = frozenset({"sh", "bash", "json", "python"})
ELLIPSES = ("...", "…")
DEFAULT_USER = "ana"

_FENCE = re.compile(r"^( {0,3})(`{3,})\s*([^`\s]*)[^`]*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*example:\s*(.*?)\s*-->\s*$")
_STATUS_PREFIX = re.compile(r"^\s*([1-5]\d\d)\s+(?=[\[{])")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class DirectiveError(ValueError):
    """A directive the vocabulary above does not have, or one that misses its argument."""


@dataclass(frozen=True)
class Directive:
    skip: str | None = None
    request: tuple[str, str] | None = None
    request_status: int | None = None
    response: bool = False
    status: int | None = None
    user: str | None = None
    runs_until_stopped: bool = False
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Block:
    file: str  # relative to the repository root, e.g. "docs/api.md"
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    directive: Directive = field(default_factory=Directive)
    directive_text: str = ""

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGUAGES

    @property
    def user(self) -> str:
        return self.directive.user or DEFAULT_USER


def parse_directive(text: str, lang: str) -> Directive:
    """Read ``skip "why"; user u42`` and the like; problems are kept, not raised, so that
    the block's own test can fail with them."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        try:
            words = shlex.split(part)
        except ValueError as exc:
            problems.append(f"{part!r}: {exc}")
            continue
        name, args = words[0], words[1:]
        try:
            values.update(_one_directive(name, args, lang))
        except DirectiveError as exc:
            problems.append(f"{part!r}: {exc}")
    return Directive(**values, problems=tuple(problems))


def _one_directive(name: str, args: list[str], lang: str) -> dict[str, Any]:
    def need(languages: set[str]) -> None:
        if lang not in languages:
            raise DirectiveError(f"applies to {'/'.join(sorted(languages))} blocks only")

    if name == "skip":
        if len(args) != 1 or not args[0].strip():
            raise DirectiveError('needs a reason: skip "why this block is not run"')
        return {"skip": args[0].strip()}
    if name == "request":
        need({"json"})
        if len(args) not in (2, 3) or args[0] not in _METHODS or not args[1].startswith("/"):
            raise DirectiveError("is: request METHOD /path [STATUS]")
        out: dict[str, Any] = {"request": (args[0], args[1])}
        if len(args) == 3:
            out["request_status"] = _status(args[2])
        return out
    if name == "response":
        need({"json"})
        if args:
            raise DirectiveError("takes no argument (write the status before the JSON)")
        return {"response": True}
    if name == "status":
        need({"sh", "bash"})
        if len(args) != 1:
            raise DirectiveError("is: status STATUS")
        return {"status": _status(args[0])}
    if name == "user":
        if len(args) != 1:
            raise DirectiveError("is: user USER_ID")
        return {"user": args[0]}
    if name == "runs-until-stopped":
        need({"python"})
        if args:
            raise DirectiveError("takes no argument")
        return {"runs_until_stopped": True}
    raise DirectiveError(
        "unknown; one of skip, request, response, status, user, runs-until-stopped"
    )


def _status(text: str) -> int:
    if not re.fullmatch(r"[1-5]\d\d", text):
        raise DirectiveError(f"{text!r} is not an HTTP status")
    return int(text)


def parse_markdown(path: Path, root: Path = ROOT) -> Iterator[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = path.relative_to(root).as_posix()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        start = i
        j = i + 1
        while j < len(lines) and not re.match(rf"^ {{0,3}}{ticks}`*\s*$", lines[j]):
            j += 1
        # A fence indented by N spaces has its lines' first N spaces taken off.
        body = [ln[len(ln[:indent]) - len(ln[:indent].lstrip(" ")) :] for ln in lines[i + 1 : j]]
        comments: list[str] = []
        k = start - 1
        while k >= 0 and (d := _DIRECTIVE.match(lines[k])):
            comments.insert(0, d.group(1))
            k -= 1
        directive_text = "; ".join(comments)
        yield Block(
            file=rel,
            line=start + 1,
            lang=lang,
            text="\n".join(body) + "\n",
            directive=parse_directive(directive_text, lang),
            directive_text=directive_text,
        )
        i = j + 1


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def collect(root: Path = ROOT) -> list[Block]:
    """Every fenced block of README.md and docs/*.md, file by file, in file order."""
    return [b for path in doc_files(root) for b in parse_markdown(path, root)]


# -- what a block shows -------------------------------------------------------------------


def split_status(text: str) -> tuple[int | None, str]:
    """``202 {"ids": []}`` -> (202, '{"ids": []}'); no status -> (None, text)."""
    m = _STATUS_PREFIX.match(text)
    if m:
        return int(m.group(1)), text[m.end() :]
    return None, text


def parse_shown_json(text: str) -> tuple[int | None, Any]:
    status, rest = split_status(text)
    return status, json.loads(rest)


@dataclass(frozen=True)
class Expectation:
    line: int  # line in the file of the ``# ->`` comment
    status: int | None
    value: Any


_ARROW = re.compile(r"^(\s*)#\s*->\s?(.*)$")
_CONTINUATION = re.compile(r"^\s*#\s?(.*)$")


def shell_expectations(block: Block) -> tuple[str, list[Expectation]]:
    """The script with every ``# -> JSON`` comment replaced by a call of
    ``__expect N`` (N its index in the list returned), which ties it to the last
    ``curl`` before it."""
    lines = block.text.splitlines()
    out: list[str] = []
    expectations: list[Expectation] = []
    i = 0
    while i < len(lines):
        m = _ARROW.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, text = m.group(1), m.group(2)
        first = i
        while True:
            try:
                status, value = parse_shown_json(text)
                break
            except json.JSONDecodeError as exc:
                nxt = _CONTINUATION.match(lines[i + 1]) if i + 1 < len(lines) else None
                if nxt is None or _ARROW.match(lines[i + 1]):
                    raise ValueError(
                        f"{block.file}:{block.line + 1 + first}: '# ->' is not followed "
                        f"by JSON: {exc}"
                    ) from exc
                i += 1
                text += "\n" + nxt.group(1)
        expectations.append(Expectation(block.line + 1 + first, status, value))
        out.append(f"{indent}__expect {len(expectations) - 1}")
        out.extend("" for _ in range(first, i))  # keep line numbers of what follows
        i += 1
    return "\n".join(out) + "\n", expectations


# -- comparing ------------------------------------------------------------------------------

_LOOSE_KEYS = frozenset({"ts", "token"})


def _is_ellipsis(value: Any) -> bool:
    return isinstance(value, str) and value.strip() in ELLIPSES


def _has_ellipsis(value: Any) -> bool:
    return isinstance(value, str) and value.endswith(ELLIPSES)


def mismatches(shown: Any, real: Any, path: str = "$") -> list[str]:
    """Where ``real`` differs from ``shown`` under the rules of the module docstring;
    empty when they match."""
    if _is_ellipsis(shown):
        return []
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return [f"{path}: shown an object, got {real!r}"]
        open_ended = any(_is_ellipsis(k) for k in shown)
        problems: list[str] = []
        for key, value in shown.items():
            if _is_ellipsis(key):
                continue
            if key not in real:
                problems.append(f"{path}.{key}: shown but missing")
            elif (key in _LOOSE_KEYS or key.endswith("_at")) and not _has_ellipsis(value):
                if (value is None) != (real[key] is None) or (
                    value is not None and type(value) is not type(real[key])
                ):
                    problems.append(f"{path}.{key}: shown {value!r}, got {real[key]!r}")
            else:
                problems.extend(mismatches(value, real[key], f"{path}.{key}"))
        if not open_ended:
            extra = sorted(set(real) - set(shown))
            if extra:
                problems.append(f'{path}: not shown: {", ".join(extra)} (or add \'"...": "..."\')')
        return problems
    if isinstance(shown, list):
        if not isinstance(real, list):
            return [f"{path}: shown a list, got {real!r}"]
        if len(shown) != len(real):
            return [f"{path}: shown {len(shown)} items, got {len(real)}: {real!r}"]
        return [
            p
            for i, (s, r) in enumerate(zip(shown, real, strict=True))
            for p in mismatches(s, r, f"{path}[{i}]")
        ]
    if isinstance(shown, str):
        for mark in ELLIPSES:
            if shown.endswith(mark):
                prefix = shown[: -len(mark)]
                if isinstance(real, str) and real.startswith(prefix):
                    return []
                return [f"{path}: shown {shown!r}, got {real!r}"]
    if isinstance(shown, bool) or isinstance(real, bool):
        return [] if shown is real else [f"{path}: shown {shown!r}, got {real!r}"]
    if shown == real and (shown is None) == (real is None):
        return []
    return [f"{path}: shown {shown!r}, got {real!r}"]


# -- placeholders ---------------------------------------------------------------------------


def fill_placeholders(text: str, *, key: str, token: str, host: str) -> str:
    """Put the real key, token and server address where the docs show placeholders."""
    for mark in ELLIPSES:
        text = text.replace(f"clk_{mark}", key).replace(f"eyJ{mark}", token)
    return text.replace("127.0.0.1:8000", host).replace("localhost:8000", host)
