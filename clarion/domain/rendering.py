"""Stored templates: compile once when saved, render per recipient when sent.

A stored template is up to eight Jinja2 bodies, one per channel part (:data:`PARTS`).
They run in the hardened sandbox of :mod:`clarion.domain.sandbox`; only ``email.html``
is autoescaped, since the other parts are plain text and escaping would show ``&amp;``.

Every failure a template author can cause — syntax, unknown filter, sandbox escape,
limits — is a ``TemplateInvalid`` (``RenderError`` when it happens while rendering) whose
``details`` name the failing part; nothing else escapes :func:`compile_template` or
:func:`render`. Variables: :func:`template_variables`. Locales: :func:`choose_locale`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from jinja2 import Template
from jinja2.exceptions import TemplateSyntaxError

from clarion.domain.sandbox.engine import environment, harden
from clarion.domain.sandbox.limits import Abort, Budget, current_budget
from clarion.domain.types import TemplateKind
from clarion.errors import TemplateInvalid, ValidationFailed

__all__ = [
    "HTML_PARTS",
    "MAX_OUTPUT",
    "MAX_SOURCE",
    "MAX_TEMPLATE_TOKENS",
    "MAX_TOKENS",
    "PARTS",
    "CompiledTemplate",
    "RenderError",
    "StoredTemplate",
    "choose_locale",
    "compile_template",
    "count_tokens",
    "render",
    "template_variables",
]

PARTS = (
    "in_app.title",
    "in_app.message",
    "email.subject",
    "email.html",
    "email.text",
    "push.title",
    "push.body",
    "sms.text",
)
HTML_PARTS = frozenset({"email.html"})
MAX_SOURCE = 64 * 1024  # characters per part
# Compiling is CPU work no tick can bound (Python's compile() of the generated module is
# one C call), so its size is capped before parsing: tokens per part and per template.
MAX_TOKENS = 10_000
MAX_TEMPLATE_TOKENS = 50_000
MAX_OUTPUT = 64 * 1024  # characters per rendered part
MAX_WORK_CHARS = 1024 * 1024  # characters printed per part, including captured output
MAX_STEPS = 200_000  # loop steps, calls, lookups per render
DEFAULT_TIMEOUT = 0.2  # seconds of CPU time per render call, all parts together
# A render starved of CPU on a loaded machine (it spends nothing while it waits) still
# ends after this many times its CPU allowance of wall time.
WALL_FACTOR = 25


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    """One row of ``templates``: ``bodies`` is ``{locale: {part: source}}``; ``version``
    moves on every update, so ``(key, version, updated_at)`` names one set of bodies."""

    key: str
    kind: TemplateKind
    bodies: Mapping[str, Mapping[str, str]]
    default_locale: str
    description: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> StoredTemplate:
        return cls(
            key=row["key"],
            kind=TemplateKind(row["kind"]),
            bodies=row["bodies"],
            default_locale=row["default_locale"],
            description=row["description"],
            version=int(row["version"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


class RenderError(TemplateInvalid):
    """A template that compiled but failed on these variables (or hit a limit)."""


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """The checked, compiled parts of one stored template (one locale variant)."""

    sources: Mapping[str, str]
    _templates: Mapping[str, Template]

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self._templates)


def _problem(part: str, problem: str) -> dict[str, str]:
    return {"field": part, "problem": problem}


def compile_template(bodies: Mapping[str, str]) -> CompiledTemplate:
    """Compile the parts of a stored template, or raise ``TemplateInvalid`` listing every bad part.

    Called when a template is saved, so that authors learn about syntax errors, unknown
    filters and ``{% include %}``-style statements (not supported: there is no loader)
    before anything is sent.
    """
    if not isinstance(bodies, Mapping) or not bodies:
        raise TemplateInvalid(
            "a template needs at least one part",
            details=[_problem("bodies", "must name at least one of " + ", ".join(PARTS))],
        )
    problems: list[dict[str, str]] = []
    compiled: dict[str, Template] = {}
    for part in sorted(bodies, key=lambda p: PARTS.index(p) if p in PARTS else len(PARTS)):
        source = bodies[part]
        if part not in PARTS:
            problems.append(_problem(part, "unknown part; one of " + ", ".join(PARTS)))
        elif not isinstance(source, str):
            problems.append(_problem(part, "must be a string"))
        elif len(source) > MAX_SOURCE:
            problems.append(_problem(part, f"must be at most {MAX_SOURCE} characters"))
        else:
            try:
                compiled[part] = _compile_part(part, source)
            except TemplateInvalid as exc:
                problems.extend(exc.details)
    if problems:
        raise TemplateInvalid("the template does not compile", details=problems)
    return CompiledTemplate(
        sources=MappingProxyType({p: bodies[p] for p in compiled}),
        _templates=MappingProxyType(compiled),
    )


def count_tokens(source: str, limit: int = MAX_TOKENS) -> int:
    """The Jinja tokens of ``source``, counted up to ``limit + 1`` (then it stops). A
    source that does not lex counts what lexed; compiling reports the error."""
    count = 0
    try:
        for _ in environment(autoescape=False).lex(source):
            count += 1
            if count > limit:
                break
    except TemplateSyntaxError:
        pass
    return count


def _compile_part(part: str, source: str) -> Template:
    env = environment(autoescape=part in HTML_PARTS)
    if count_tokens(source) > MAX_TOKENS:
        raise TemplateInvalid(
            "the template is too large", [_problem(part, f"at most {MAX_TOKENS} tokens")]
        )
    try:
        tree = env.parse(source)
        harden(tree, env)
        return env.from_string(tree)
    except TemplateSyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        raise TemplateInvalid(
            exc.message or "syntax error", [_problem(part, where + str(exc.message))]
        ) from exc
    except Abort as exc:
        raise TemplateInvalid(str(exc), [_problem(part, str(exc))]) from exc
    except (RecursionError, MemoryError) as exc:
        raise TemplateInvalid(
            "template nested too deeply", [_problem(part, "nested too deeply")]
        ) from exc
    except Exception as exc:  # any other compiler failure is still the author's template
        raise TemplateInvalid(str(exc), [_problem(part, f"cannot compile: {exc}")]) from exc


def render(
    compiled: CompiledTemplate,
    variables: Mapping[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, str]:
    """Render every part with ``variables``; raises ``RenderError`` (a ``TemplateInvalid``).

    Limits: ``timeout`` seconds of this thread's CPU time (and ``WALL_FACTOR`` times that
    of wall time) and ``MAX_STEPS`` steps for the whole call, ``MAX_OUTPUT``
    characters per part. Output is stripped of surrounding whitespace, which templates
    tend to accumulate around ``{% %}`` tags.
    """
    budget = Budget.start(
        seconds=timeout,
        steps=MAX_STEPS,
        chars=MAX_WORK_CHARS,
        wall_seconds=timeout * WALL_FACTOR,
    )
    context = {str(k): v for k, v in variables.items()}
    out: dict[str, str] = {}
    token = current_budget.set(budget)
    try:
        for part, template in compiled._templates.items():
            budget.chars_left = MAX_WORK_CHARS
            out[part] = _render_part(part, template, context, budget)
    finally:
        current_budget.reset(token)
    return out


def _render_part(part: str, template: Template, context: dict[str, Any], budget: Budget) -> str:
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate(context):
            budget.tick()
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise Abort(f"the output is longer than {MAX_OUTPUT} characters")
            chunks.append(chunk)
    except Abort as exc:
        raise RenderError(f"{part}: {exc}", [_problem(part, str(exc))]) from exc
    except RecursionError as exc:
        raise RenderError(
            f"{part}: recursion too deep", [_problem(part, "recursion too deep")]
        ) from exc
    except Exception as exc:  # author errors: undefined attributes, bad types, ...
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise RenderError(f"{part}: {message}", [_problem(part, message)]) from exc
    return "".join(chunks).strip()


def template_variables(
    *,
    data: Mapping[str, Any] | None,
    user: Mapping[str, Any] | None,
    notification: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The names a template sees: ``data`` (the send's payload), ``user`` (the recipient's
    profile) and ``notification`` (title, type, priority, ...). Kept as three namespaces,
    so a key in ``data`` can never shadow the recipient's profile."""
    return {
        "data": dict(data or {}),
        "user": dict(user or {}),
        "notification": dict(notification or {}),
    }


def _norm(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def choose_locale(available: Iterable[str], wanted: str | None, default: str = "en") -> str:
    """Pick the best of ``available`` locale variants for a user who wants ``wanted``.

    Order: exact match (case and ``_``/``-`` insensitive: ``pt_br`` == ``pt-BR``); the bare
    language (``pt`` for ``pt-BR``); another region of the same language (``pt-PT``),
    alphabetically first; then the same steps for ``default``; then the alphabetically
    first variant. Returns the variant as spelled in ``available``.
    """
    variants = sorted({v for v in available if isinstance(v, str) and v.strip()})
    if not variants:
        raise ValidationFailed(
            "no locale variants", details=[_problem("locales", "at least one is required")]
        )
    by_norm = {_norm(v): v for v in variants}
    for target in (wanted, default):
        if not target or not target.strip():
            continue
        tag = _norm(target)
        language = tag.split("-")[0]
        if tag in by_norm:
            return by_norm[tag]
        if language in by_norm:
            return by_norm[language]
        for norm, original in by_norm.items():
            if norm.split("-")[0] == language:
                return original
    return variants[0]
