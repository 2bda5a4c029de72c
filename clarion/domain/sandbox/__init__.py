"""The Jinja2 sandbox that stored templates run in, with limits enforced *inside* it.

Templates are written by API clients and rendered inside the service, so a template must
not read Python internals, and must not be able to spend unbounded time or memory. Jinja's
``ImmutableSandboxedEnvironment`` covers the first; Python threads cannot be killed, so
the second is enforced cooperatively, from inside the generated code:

* every ``{% for %}`` iterable is wrapped (an AST rewrite, :mod:`.guard`) in an iterator
  that ticks a per-render ``Budget``; so do every call, attribute/item lookup and
  intercepted operator. A tick past the step cap or the CPU-time deadline raises ``Abort``.
  With every loop and every call (macros, recursive loops) ticking, nothing can run long
  between two ticks except a single builtin operation — hence the next point;
* builtins that allocate in proportion to an *argument* are pre-checked: ``*``, ``**``,
  ``+``, ``%`` (output sized from widths and arguments), ``~``, the methods of str, bytes
  and int (every integer argument capped: ``ljust``, ``zfill``, ``to_bytes``, ...; the
  output of ``replace``, ``join``, ``expandtabs``, ``translate`` sized), and the filters
  ``center``, ``indent``, ``format``, ``replace``, ``wordwrap``, ``join``, ``sum``,
  ``batch``, ``slice``, ``round`` (precision), ``tojson`` (indent), ``urlize``; filters
  that scan text in one C call (``wordcount``, ``title``, ``striptags``) take bounded
  input. ``tojson`` and ``pprint`` write into a sink that stops at ``MAX_VALUE_WEIGHT``
  while they produce, and filters that loop in Python (``unique``, ``map``, ``list``, ...)
  tick per item;
* every call, operator and filter result, every call's arguments and every list, tuple
  and dict literal is weighed (``weight``), so no value bigger than
  ``MAX_VALUE_WEIGHT`` is kept — ``[x, x, x]`` holds ``x`` three times. (What is refused
  only after it was built is at most a small multiple of the limit: its size follows
  from inputs that were themselves weighed.)
* everything printed, including output captured by ``{% set %}`` blocks and macros, is
  charged to the budget's character allowance (a non-string is weighed before ``str()``).

``str.format``/``format_map`` and ``lipsum`` are not offered at all; ``range`` refuses
more than ``MAX_RANGE`` items. Unsafe attribute access raises at once instead of
rendering as an empty ``Undefined``, so an escape attempt is always an error.

The modules, one concept each:

* :mod:`.limits` — every bound, ``Abort``, the per-render ``Budget`` and ``weight``;
* :mod:`.sizing` — output sizes of single builtin operations (``%``, str/bytes/int
  methods), computed before they run;
* :mod:`.filters` — Jinja's built-in filters, bounded;
* :mod:`.guard` — the AST rewrite and the hook filters it routes loops, literals and
  output through;
* :mod:`.engine` — the sandboxed environment (``environment``) and ``harden``, which
  binds a parsed template to it. :mod:`clarion.domain.rendering` is the entry point.
"""
