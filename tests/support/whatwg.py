"""Two WHATWG URL parsers to hold the gateway's host parsing against.

* :func:`ada_parse` uses ``ada_url`` (the Python binding of ada, the C++ parser that Node's
  ``URL`` is built on; its IDNA tables may be newer than the ones in the Node on PATH);
* :class:`NodeURL` is one long-lived ``node`` process evaluating ``new URL(raw)``: the same
  runtime as the test authorization server (node-oidc-provider), so the same reading of a
  host as the one the browser is sent to.

The node process speaks a line protocol: after a hello line with its versions, it answers
each line of stdin (one JSON-encoded string) with one JSON line,
``{"ok": true, "hostname": ..., "href": ...}`` or ``{"ok": false, "error": ...}``.  Requests
are JSON with ``ensure_ascii``, so no input can contain a raw line break (``\\r``, U+2028 ...)
that would split a request in two.
"""

from __future__ import annotations

import json
import select
import subprocess
from dataclasses import dataclass
from typing import Any

import ada_url

#: The evaluator run by ``node -e``.  CommonJS, no dependencies.
NODE_SCRIPT = r"""
"use strict";
const readline = require("node:readline");
process.stdout.write(JSON.stringify({
  hello: true,
  node: process.versions.node,
  ada: process.versions.ada || null,
  icu: process.versions.icu || null,
  unicode: process.versions.unicode || null,
}) + "\n");
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  let raw;
  try {
    raw = JSON.parse(line);
  } catch (error) {
    process.stdout.write(JSON.stringify({ protocol_error: String(error) }) + "\n");
    return;
  }
  let answer;
  try {
    const url = new URL(raw);
    answer = { ok: true, hostname: url.hostname, href: url.href };
  } catch (error) {
    answer = { ok: false, error: String((error && error.code) || error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
"""

#: How long one answer may take before the node process is considered hung, in seconds.
ANSWER_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class WhatwgResult:
    """What one WHATWG parser made of a URL: failure, or its hostname and serialization."""

    ok: bool
    hostname: str | None = None
    href: str | None = None
    error: str | None = None

    def __str__(self) -> str:
        if not self.ok:
            return f"failure ({self.error})" if self.error else "failure"
        return f"hostname={self.hostname!r} href={self.href!r}"


def ada_parse(raw: str) -> WhatwgResult:
    """``raw`` read by ada (``ada_url.URL``)."""
    try:
        url = ada_url.URL(raw)
    except ValueError as exc:  # ada's "Invalid input", or text that is not valid UTF-8
        return WhatwgResult(ok=False, error=str(exc))
    return WhatwgResult(ok=True, hostname=url.hostname, href=url.href)


class NodeURLError(RuntimeError):
    """The node evaluator died, hung or broke the line protocol."""


class NodeURL:
    """One ``node`` process answering ``new URL(raw)`` for each :meth:`parse` call."""

    def __init__(self, node: str) -> None:
        self._process = subprocess.Popen(
            [node, "-e", NODE_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        hello = self._read()
        if not hello.get("hello"):
            self.close()
            raise NodeURLError(f"node evaluator did not say hello: {hello!r}")
        #: ``process.versions`` of the node process: node, ada, icu, unicode.
        self.versions: dict[str, str | None] = {
            key: hello.get(key) for key in ("node", "ada", "icu", "unicode")
        }

    def parse(self, raw: str) -> WhatwgResult:
        """``raw`` read by ``new URL(raw)`` in the node process."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(raw).encode("ascii") + b"\n")
            self._process.stdin.flush()
        except BrokenPipeError as exc:
            raise NodeURLError(f"node evaluator exited: {self._stderr()}") from exc
        answer = self._read()
        if "protocol_error" in answer:
            raise NodeURLError(f"node evaluator could not read {raw!r}: {answer!r}")
        if answer.get("ok"):
            return WhatwgResult(ok=True, hostname=answer["hostname"], href=answer["href"])
        return WhatwgResult(ok=False, error=answer.get("error"))

    def close(self) -> None:
        process = self._process
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()  # readline ends, the event loop empties, node exits
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    def _read(self) -> dict[str, Any]:
        """One answer line.  Requests and answers alternate, so nothing is ever buffered
        ahead of it and waiting on the pipe itself cannot miss an answer."""
        stdout = self._process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], ANSWER_TIMEOUT)
        if not ready:
            raise NodeURLError(f"node evaluator gave no answer within {ANSWER_TIMEOUT} s")
        line = stdout.readline()
        if not line:
            raise NodeURLError(f"node evaluator exited: {self._stderr()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _stderr(self) -> str:
        process = self._process
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return f"(still running, pid {process.pid})"
        if process.stderr is None:
            return "(no stderr)"
        return process.stderr.read().decode("utf-8", "replace").strip() or "(no stderr)"
