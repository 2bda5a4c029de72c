"""Every JSON, shell and Python example of README.md and docs/*.md, run against a real
``clarion serve`` on SQLite, so that a page cannot drift from what the server does.

The rules (what runs, directives, placeholders, how answers are compared) are in
``tests/docs_examples.py`` and, for writers, in docs/contributing-docs.md. Each file gets
its own server and fresh database; a file's examples run in file order and may build on
each other. Skipped examples are pytest skips (``-rs`` lists them with their reasons).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docs_examples import (
    Block,
    Directive,
    collect,
    fill_placeholders,
    mismatches,
    parse_directive,
    parse_shown_json,
    shell_expectations,
)
from tests.e2e.conftest import Server, clarion_env, run_cli, start_server

pytestmark = pytest.mark.e2e

PYTHON_TIMEOUT = 20.0
SHELL_TIMEOUT = 60.0
LISTENER_WAIT = 10.0
SELF_TEST = "self-test"  # the server the runner's own checks use


@dataclass(frozen=True)
class KnownBroken:
    """An example known to fail, in a page whose fix is waiting elsewhere. ``contains`` picks
    the block by its text (line numbers move); ``fix`` says what the page needs."""

    file: str
    contains: str
    fix: str


KNOWN_BROKEN: list[KnownBroken] = []

BLOCKS = [b for b in collect() if b.runs]


def _broken(block: Block) -> KnownBroken | None:
    for known in KNOWN_BROKEN:
        if known.file == block.file and known.contains in block.text:
            return known
    return None


def _param(block: Block) -> Any:
    known = _broken(block)
    marks = [pytest.mark.xfail(reason=known.fix, strict=False)] if known else []
    return pytest.param(block, id=block.id, marks=marks)


# -- one server per file ----------------------------------------------------------------


@dataclass
class DocServer:
    server: Server
    workdir: Path
    tokens: dict[str, str] = field(default_factory=dict)
    last_response: tuple[int, Any] | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.url.removeprefix("http://")

    def auth(self, user: str | None = None) -> dict[str, str]:
        credential = self.token(user) if user else self.server.key
        return {"Authorization": f"Bearer {credential}"}

    def token(self, user: str) -> str:
        if user not in self.tokens:
            r = httpx.post(f"{self.url}/api/v1/users/{user}/token", headers=self.auth(), timeout=30)
            r.raise_for_status()
            self.tokens[user] = r.json()["token"]
        return self.tokens[user]

    def refusals(self) -> Counter[str]:
        """Responses >= 400 so far, by method, route and status (from /metrics)."""
        text = httpx.get(f"{self.url}/metrics", headers=self.auth(), timeout=30).text
        counts: Counter[str] = Counter()
        pattern = r'^clarion_http_requests_total\{(.*status="[45]\d\d".*)\} (\S+)$'
        for m in re.finditer(pattern, text, re.M):
            counts[m.group(1)] = int(float(m.group(2)))
        return counts

    def fill(self, text: str, user: str) -> str:
        return fill_placeholders(text, key=self.server.key, token=self.token(user), host=self.host)

    def python_env(self) -> dict[str, str]:
        return {**self.server.env, "PYTHONUNBUFFERED": "1"}


class DocServers:
    """One server per file, each on a copy of one migrated database holding one API key
    (on a busy machine every process start costs seconds). The next file's server starts
    while the current file's examples run; at most two are up at once."""

    def __init__(self, base: Path, files: list[str]) -> None:
        self.base = base
        self.files = files
        self.template = base / "template"
        self.template.mkdir()
        env = clarion_env(self.template)
        self.key = run_cli(env, "api-key", "create", "--name", "docs", cwd=self.template).strip()
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.started: dict[str, Future[DocServer]] = {}
        self.current: str | None = None

    def _start(self, file: str) -> DocServer:
        workdir = self.base / re.sub(r"[^A-Za-z0-9]+", "-", file)
        workdir.mkdir()
        for item in self.template.iterdir():  # the database and its .clarion-secret
            if item.is_file():
                shutil.copy(item, workdir / item.name)
        return DocServer(start_server(workdir, clarion_env(workdir), key=self.key), workdir)

    def _future(self, file: str) -> Future[DocServer]:
        if file not in self.started:
            self.started[file] = self.pool.submit(self._start, file)
        return self.started[file]

    def for_file(self, file: str) -> DocServer:
        if self.current != file:
            if self.current is not None:
                self._stop(self.started[self.current])
            self.current = file
            later = self.files[self.files.index(file) + 1 :] if file in self.files else []
            if later:
                self._future(later[0])
        return self._future(file).result()

    @staticmethod
    def _stop(future: Future[DocServer]) -> None:
        with contextlib.suppress(Exception):  # one that failed to start has nothing to stop
            future.result().server.stop()

    def close(self) -> None:
        for future in self.started.values():
            self._stop(future)
        self.pool.shutdown()


def _needs_server(block: Block) -> bool:
    d = block.directive
    if d.skip or d.problems:
        return False
    return block.lang != "json" or bool(d.request or d.response)


@pytest.fixture(scope="module")
def doc_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocServers]:
    files = [SELF_TEST, *dict.fromkeys(b.file for b in BLOCKS if _needs_server(b))]
    servers = DocServers(tmp_path_factory.mktemp("docs"), files)
    try:
        yield servers
    finally:
        servers.close()


# -- the rules themselves ---------------------------------------------------------------


def test_every_directive_is_understood() -> None:
    """A misspelt directive would silently run (or skip) a block: refuse it."""
    blocks = collect()
    problems = [f"{b.id}: {p}" for b in blocks for p in b.directive.problems]
    problems += [
        f"{b.id}: a directive on a {b.lang or 'plain'} block, which is never run"
        for b in blocks
        if b.directive_text and not b.runs
    ]
    assert not problems, "\n".join(problems)


def test_known_broken_entries_match_one_example_each() -> None:
    """A fixed example's entry must go, so that the list only names real failures."""
    stale = []
    for known in KNOWN_BROKEN:
        hits = [b.id for b in BLOCKS if b.file == known.file and known.contains in b.text]
        if len(hits) != 1:
            stale.append(f"{known.file} {known.contains!r}: matches {hits or 'nothing'}")
    assert not stale, "\n".join(stale)


def test_directives_parse_and_refuse_what_they_do_not_know() -> None:
    assert parse_directive('skip "a banner"; user u42', "sh") == Directive(
        skip="a banner", user="u42"
    )
    d = parse_directive("request PUT /api/v1/x 422", "json")
    assert (d.request, d.request_status, d.problems) == (("PUT", "/api/v1/x"), 422, ())
    for text, lang in [
        ("skip", "sh"),  # no reason
        ("request POST /x", "sh"),  # json only
        ("status 42", "sh"),
        ("runs-until-stoped", "python"),
        ("response 200", "json"),
    ]:
        assert parse_directive(text, lang).problems, text


def test_the_comparison_rules() -> None:
    real = {"token": "eyJhbGci", "user_id": "ana", "expires_in": 3600, "read_at": None}
    assert (
        mismatches({"token": "eyJ...", "user_id": "ana", "expires_in": 3600, "read_at": None}, real)
        == []
    )
    assert mismatches({"user_id": "…", "...": "..."}, real) == []
    assert mismatches({"token": "xyz…", "...": "..."}, real)  # not a prefix of it
    assert mismatches({"user_id": "ana", "...": "..."}, {**real, "user_id": "bo"})
    assert mismatches({"user_id": "ana"}, real)  # keys not shown
    assert mismatches({"read_at": "…", "...": "..."}, real) == []
    assert mismatches({"read_at": "2024-01-01T00:00:00Z", "...": "..."}, real)  # null stays null
    assert mismatches({"ids": [1]}, {"ids": [1, 2]})
    assert mismatches({"n": 1}, {"n": True})
    assert mismatches([{"a": "…"}], [{"a": {"b": 1}}]) == []


def test_the_runner_fails_wrong_examples(doc_servers: DocServers) -> None:
    """Against a real server: a wrong answer, a refused call, a refused request of a
    Python example and a refused JSON body each fail their example; a curl naming another
    host reaches the test server."""
    server = doc_servers.for_file(SELF_TEST)

    def block(lang: str, text: str, directive: str = "") -> Block:
        return Block(SELF_TEST, 1, lang, text, parse_directive(directive, lang), directive)

    count = (
        'curl -s "$API/notifications/unread-count?user_id=ana" -H "Authorization: Bearer $KEY"\n'
    )
    _run_shell(block("sh", count + '# -> {"user_id": "ana", "unread": 0, "unseen": 0}\n'), server)
    with pytest.raises(AssertionError, match=r"\$\.unread: shown 5"):
        _run_shell(
            block("sh", count + '# -> {"user_id": "ana", "unread": 5, "unseen": 0}\n'), server
        )
    elsewhere = 'curl -s http://elsewhere.invalid/healthz\n# -> {"status": "ok", "...": "..."}\n'
    _run_shell(block("sh", elsewhere), server)  # reached the test server, not the network
    missing = 'curl -s $API/notifications/999 -H "Authorization: Bearer $KEY"\necho after\n'
    with pytest.raises(AssertionError, match="HTTP 404"):
        _run_shell(block("sh", missing), server)
    with pytest.raises(AssertionError, match="HTTP 404"):  # not stopped by a pipe
        _run_shell(block("sh", missing.replace("\necho", " | cat\necho")), server)
    _run_shell(block("sh", missing, "status 404"), server)
    with pytest.raises(AssertionError, match="no curl answered 422"):
        _run_shell(block("sh", count, "status 422"), server)
    refused = (
        "import httpx\n"
        'httpx.get("http://127.0.0.1:8000/api/v1/notifications/999",\n'
        '          headers={"Authorization": f"Bearer {KEY}"})\n'
    )
    with pytest.raises(AssertionError, match="refused"):
        _run_python(block("python", refused), server)
    with pytest.raises(AssertionError, match="answered 422"):
        _run_json(
            block("json", '{"user_id": "ana"}', "request POST /api/v1/notifications"), doc_servers
        )


# -- the examples -----------------------------------------------------------------------


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_example(block: Block, doc_servers: DocServers) -> None:
    assert not block.directive.problems, block.directive.problems
    if block.directive.skip:
        pytest.skip(f"{block.id} not run: {block.directive.skip}")
    if block.lang == "json":
        _run_json(block, doc_servers)
    elif block.lang == "python":
        _run_python(block, doc_servers.for_file(block.file))
    else:
        _run_shell(block, doc_servers.for_file(block.file))


# -- json ---------------------------------------------------------------------------------


def _run_json(block: Block, doc_servers: DocServers) -> None:
    try:
        status, value = parse_shown_json(block.text)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{block.id} is not JSON: {exc}")
    d = block.directive
    if d.request:
        server = doc_servers.for_file(block.file)
        method, path = d.request
        r = httpx.request(
            method, server.url + path, json=value, headers=server.auth(d.user), timeout=30
        )
        server.last_response = (r.status_code, r.json() if r.content else None)
        ok = r.status_code == d.request_status if d.request_status else r.is_success
        assert ok, f"{method} {path} answered {r.status_code} {r.text}"
    elif d.response:
        server = doc_servers.for_file(block.file)
        assert server.last_response, "a response block needs a request block before it"
        real_status, real = server.last_response
        if status is not None:
            assert real_status == status, f"the request answered {real_status} {real}"
        problems = mismatches(value, real)
        assert not problems, f"real answer {json.dumps(real)}:\n" + "\n".join(problems)


# -- shell ------------------------------------------------------------------------------

# Every call goes to the test server (--connect-to): an example naming another host cannot
# reach out. Its status and body are kept for the checks after the run.
PRELUDE = r"""set -eo pipefail
curl() {
  local n status
  n=$(( $(cat "$EXAMPLE_DIR/count") + 1 ))
  echo "$n" > "$EXAMPLE_DIR/count"
  status=$(command curl -sS --connect-to "::$EXAMPLE_HOST" -o "$EXAMPLE_DIR/$n.body" \
    -w '%{http_code}' "$@") || return
  echo "$n $status" >> "$EXAMPLE_DIR/calls"
  cat "$EXAMPLE_DIR/$n.body"
  if [ "$status" -ge 400 ] && [ "$status" != "${EXAMPLE_STATUS:-}" ]; then
    echo "curl: HTTP $status" >&2
    return 22
  fi
}
__expect() { echo "$1 $(cat "$EXAMPLE_DIR/count")" >> "$EXAMPLE_DIR/expects"; }
"""


def _pairs(path: Path) -> dict[int, int]:
    return {int(a): int(b) for a, b in (line.split() for line in path.read_text().splitlines())}


def _run_shell(block: Block, server: DocServer) -> None:
    script, expectations = shell_expectations(block)
    work = Path(tempfile.mkdtemp(prefix=f"sh-{block.line}-", dir=server.workdir))
    (work / "count").write_text("0")
    (work / "calls").touch()
    (work / "expects").touch()
    path = work / "example.sh"
    path.write_text(PRELUDE + server.fill(script, block.user))
    # Examples are written for a checkout, where the CLI is .venv/bin/clarion.
    venv_bin = server.workdir / ".venv" / "bin"
    if not venv_bin.exists():
        venv_bin.parent.mkdir(exist_ok=True)
        venv_bin.symlink_to(Path(sys.executable).parent)
    token = server.token(block.user)
    env = {
        **server.server.env,
        "KEY": server.server.key,
        "CLARION": server.url,
        "API": f"{server.url}/api/v1",
        "TOKEN": token,
        "USER_TOKEN": token,
        "PATH": f"{Path(sys.executable).parent}:{server.server.env.get('PATH', '')}",
        "EXAMPLE_DIR": str(work),
        "EXAMPLE_HOST": server.host,
        "EXAMPLE_STATUS": str(block.directive.status or ""),
    }
    try:
        out = subprocess.run(
            ["bash", str(path)],
            env=env,
            cwd=server.workdir,
            capture_output=True,
            text=True,
            timeout=SHELL_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.id} still running after {SHELL_TIMEOUT} s: {exc.stdout!r}")
    calls = _pairs(work / "calls")
    report = f"exit {out.returncode}\nstdout: {out.stdout[-3000:]}\nstderr: {out.stderr[-3000:]}"
    refused = [
        f"call {n}: HTTP {status}: {(work / f'{n}.body').read_text()[:500]}"
        for n, status in calls.items()
        if status >= 400 and status != block.directive.status
    ]
    assert not refused, "\n".join(refused) + "\n" + report
    assert out.returncode == 0, report
    if block.directive.status:
        assert block.directive.status in calls.values(), (
            f"no curl answered {block.directive.status}: {calls}\n{report}"
        )
    tied = _pairs(work / "expects")
    problems: list[str] = []
    for index, shown in enumerate(expectations):
        n = tied.get(index, 0)
        if n == 0:
            problems.append(f"line {shown.line}: no curl ran before this '# ->'")
            continue
        if shown.status is not None and calls[n] != shown.status:
            problems.append(f"line {shown.line}: shown status {shown.status}, got {calls[n]}")
        body = (work / f"{n}.body").read_text()
        try:
            real = json.loads(body)
        except json.JSONDecodeError:
            problems.append(f"line {shown.line}: the answer is not JSON: {body[:500]!r}")
            continue
        found = mismatches(shown.value, real)
        problems += [f"line {shown.line}: {p}" for p in found]
        if found:
            problems.append(f"line {shown.line}: real answer {body[:1500]}")
    assert not problems, "\n".join(problems)


# -- python -----------------------------------------------------------------------------


def _run_python(block: Block, server: DocServer) -> None:
    before = server.refusals()
    token = server.token(block.user)
    path = Path(tempfile.mkdtemp(prefix=f"py-{block.line}-", dir=server.workdir)) / "example.py"
    path.write_text(
        f"KEY = {server.server.key!r}\nTOKEN = {token!r}\n" + server.fill(block.text, block.user)
    )
    if block.directive.runs_until_stopped:
        _run_listener(block, server, path)
    else:
        try:
            out = subprocess.run(
                [sys.executable, str(path)],
                env=server.python_env(),
                cwd=path.parent,
                capture_output=True,
                text=True,
                timeout=PYTHON_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{block.id} still running after {PYTHON_TIMEOUT} s: {exc.stdout!r}")
        assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    refused = server.refusals() - before
    assert not refused, f"the server refused requests of the example: {dict(refused)}"


def _run_listener(block: Block, server: DocServer, path: Path) -> None:
    """Start the listener, send its user a notification once it has printed something
    (it is connected), and expect the title printed while it keeps running."""
    proc = subprocess.Popen(
        [sys.executable, str(path)],
        env=server.python_env(),
        cwd=path.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")))
    reader.start()
    title = f"Checking the example at line {block.line}"
    try:
        deadline = time.monotonic() + LISTENER_WAIT
        while not lines and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"the listener ended: {''.join(lines)}"
        r = httpx.post(
            f"{server.url}/api/v1/notifications",
            headers=server.auth(),
            json={"user_id": block.user, "type": "docs_check", "title": title},
            timeout=30,
        )
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + LISTENER_WAIT
        while title not in "".join(lines) and proc.poll() is None:
            assert time.monotonic() < deadline, f"never printed {title!r}: {''.join(lines)}"
            time.sleep(0.05)
        time.sleep(0.5)  # and it keeps running after handling it
        assert proc.poll() is None, f"the listener ended: {''.join(lines)}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        reader.join(5)
