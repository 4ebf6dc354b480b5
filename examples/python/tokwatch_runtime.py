#!/usr/bin/env python3
"""A reference agent runtime for tokwatch's control protocol (stdlib only).

It holds a budget controller that serves the control protocol
(docs/control-protocol.md) on a Unix socket or loopback TCP, applies the
budgets tokwatch pushes (versions, idempotency keys, validation with
reasons, precedence agent > segment > global per limit), enforces them at
every hop of a tiny planner -> researcher -> writer -> critic loop, and writes
native telemetry (docs/schema.md) that tokwatch reads.

    python3 tokwatch_runtime.py --control /tmp/rt.sock --out /tmp/rt-telemetry
    tokwatch budget set --control unix:/tmp/rt.sock --global --per-hop-limit 5000
    tokwatch report /tmp/rt-telemetry

To put the controller in your own runtime, keep `BudgetController` and
`ControlServer`, and call `enforce_hop` before each model call and
`enforce_run` after it (see `run_workflow`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import socket
import stat
import sys
import tempfile
import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 64 * 1024
RUNTIME = "tokwatch-runtime-py 0.1.0"
ACTIONS = ("trim", "abort", "pause", "warn")
LIMITS = ("per_hop_limit", "total_run_limit", "run_cost_limit_usd")
LIMIT_FIELDS = LIMITS + ("on_hop_breach", "on_run_breach")
# Answers remembered per idempotency key (oldest forgotten first).
REMEMBERED_KEYS = 10_000

log = logging.getLogger("tokwatch_runtime")


class RunBudgetExceeded(Exception):
    """Raised in a run stopped by a budget (`abort`)."""

    def __init__(self, breach: dict):
        super().__init__(
            f"run {breach.get('run_id')}: {breach['limit_kind']} limit exceeded"
        )
        self.breach = breach


class RunCancelled(Exception):
    """Raised in a run when the runtime stops."""


# --- budgets ---------------------------------------------------------------


def scope_key(scope) -> tuple:
    """`{"kind":"agent","name":"writer"}` -> `("agent", "writer")`."""
    if isinstance(scope, dict):
        kind, name = scope.get("kind"), scope.get("name")
        if kind == "global":
            return ("global", None)
        if kind in ("agent", "segment") and isinstance(name, str) and name:
            return (kind, name)
    raise ValueError(f"not a scope: {scope!r}")


def scope_json(key: tuple) -> dict:
    kind, name = key
    return {"kind": kind} if kind == "global" else {"kind": kind, "name": name}


def parse_usd(text) -> Decimal | None:
    """An exact positive dollar amount, or None."""
    if not isinstance(text, str):
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount > 0 else None


def validate(limits) -> str | None:
    """Why a runtime refuses `limits` (tokwatch's own wording), or None."""
    if not isinstance(limits, dict):
        return "limits must be an object"
    for name in limits:
        if name not in LIMIT_FIELDS:
            return f"unknown limit '{name}'"
    if all(limits.get(name) is None for name in LIMITS):
        return "a budget needs at least one limit"
    for name in ("per_hop_limit", "total_run_limit"):
        value = limits.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{name} must be a whole number of tokens"
        if value == 0:
            return f"{name} must be greater than 0"
    cost = limits.get("run_cost_limit_usd")
    if cost is not None and parse_usd(cost) is None:
        return f"run_cost_limit_usd '{cost}' is not a positive amount of dollars"
    for name in ("on_hop_breach", "on_run_breach"):
        action = limits.get(name)
        if action is not None and action not in ACTIONS:
            return f"{name} '{action}' is not one of trim, abort, pause, warn"
    hop, run = limits.get("per_hop_limit"), limits.get("total_run_limit")
    if hop is not None and run is not None and hop > run:
        return f"per_hop_limit ({hop}) exceeds total_run_limit ({run})"
    return None


class BudgetController:
    """The limits in force per scope, and the protocol's server logic.

    Thread-safe: the control server's connections and the agent loop's runs
    share one controller.
    """

    def __init__(self, runtime: str = RUNTIME, max_context: int = 200_000):
        self.runtime = runtime
        # Changes at every start: tokwatch resyncs a restarted runtime.
        self.runtime_id = f"py-{uuid.uuid4().hex[:12]}"
        # This runtime's largest context window: a longer per-hop limit is refused.
        self.max_context = max_context
        self._cond = threading.Condition()
        # scope -> (version, limits, idempotency key of the change that set it)
        self._applied: dict[tuple, tuple[int, dict, str | None]] = {}
        self._answers: OrderedDict[str, dict] = OrderedDict()
        self._listeners: list[Callable[[dict], None]] = []
        # Bumped by every applied change (paused runs wait on it).
        self.generation = 0

    # The protocol.

    def validate(self, limits) -> str | None:
        reason = validate(limits)
        if reason is None:
            hop = limits.get("per_hop_limit")
            if hop is not None and hop > self.max_context:
                return (
                    f"per_hop_limit ({hop}) exceeds this runtime's largest "
                    f"context window ({self.max_context})"
                )
        return reason

    def set_budget(self, scope, version, limits, idempotency_key=None, base_version=None) -> dict:
        """Handles a `budget.set` (or a `budget.sync` entry); returns the
        answer without its `id`:

        - an empty or blank key is no key (never remembered);
        - a key seen before gets the same answer (and the budget in force
          sent again with its own key is acknowledged: it is applied);
        - a version not newer than the one in force, or a change based on an
          older version than the one in force (`base_version`: another
          controller changed the scope since), is refused with
          `code: "conflict"` and the version and limits in force, so the
          client can rebase;
        - invalid limits get a nack with the reason (the previous limits stay).
        """
        key = scope_key(scope)
        # An empty or blank key is no key: clients that send one would
        # otherwise all share it and get each other's remembered answers.
        if idempotency_key is not None and not idempotency_key.strip():
            idempotency_key = None
        with self._cond:
            if idempotency_key is not None and idempotency_key in self._answers:
                return dict(self._answers[idempotency_key])
            applied_version, applied_limits, applied_key = self._applied.get(key, (0, None, None))
            if (applied_version == version and applied_key is not None
                    and applied_key == idempotency_key):
                return {"type": "budget.ack", "scope": scope_json(key), "version": version}
            behind = base_version is not None and base_version < applied_version
            if version <= applied_version or behind:
                if behind:
                    reason = (f"v{version} is based on v{base_version} but v{applied_version} "
                              "is in force (set by another controller)")
                else:
                    reason = (f"v{version} is not newer than v{applied_version} in force "
                              "(set by another controller)")
                answer = {
                    "type": "budget.nack",
                    "scope": scope_json(key),
                    "version": version,
                    "applied_version": applied_version,
                    "reason": reason,
                    "code": "conflict",
                }
                if applied_limits is not None:
                    answer["limits"] = dict(applied_limits)
            elif (reason := self.validate(limits)) is not None:
                answer = {
                    "type": "budget.nack",
                    "scope": scope_json(key),
                    "version": version,
                    "applied_version": applied_version,
                    "reason": reason,
                }
            else:
                # A budget replaces the scope's previous one.
                self._applied[key] = (version, dict(limits), idempotency_key)
                self.generation += 1
                self._cond.notify_all()
                answer = {
                    "type": "budget.ack",
                    "scope": scope_json(key),
                    "version": version,
                }
            if idempotency_key is not None:
                self._answers[idempotency_key] = answer
                while len(self._answers) > REMEMBERED_KEYS:
                    self._answers.popitem(last=False)
            return dict(answer)

    def hello(self) -> dict:
        with self._cond:
            applied = [
                {"scope": scope_json(k), "version": v}
                for k, (v, _, _) in sorted(self._applied.items(), key=_order)
            ]
        return {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "runtime": self.runtime,
            "runtime_id": self.runtime_id,
            "applied": applied,
        }

    def state(self) -> list[dict]:
        with self._cond:
            return [
                {"scope": scope_json(k), "version": v, "limits": dict(limits),
                 **({"idempotency_key": key} if key is not None else {})}
                for k, (v, limits, key) in sorted(self._applied.items(), key=_order)
            ]

    def handle(self, request, greeted: bool) -> tuple[list[dict], str | None]:
        """Answers one request: (replies, reason to close the connection)."""
        if not isinstance(request, dict):
            return [], "not a protocol message: not a JSON object"
        kind = request.get("type")
        if kind == "hello":
            if request.get("protocol") != PROTOCOL_VERSION:
                return [], f"unsupported protocol {request.get('protocol')}"
            return [self.hello()], None
        if not greeted:
            return [], "the first message must be hello"
        request_id = request.get("id")
        if not isinstance(request_id, str):
            return [], f"not a protocol message: {kind} without an id"
        try:
            if kind == "budget.set":
                answer = self.set_budget(
                    request["scope"],
                    _version(request["version"]),
                    request["limits"],
                    _key(request["idempotency_key"]),
                    _base(request.get("base_version")),
                )
                return [{**answer, "id": request_id}], None
            if kind == "budget.sync":
                budgets = request["budgets"]
                if not isinstance(budgets, list):
                    raise ValueError("budgets must be a list")
                replies = [
                    {
                        **self.set_budget(
                            entry["scope"],
                            _version(entry["version"]),
                            entry["limits"],
                            _key(entry.get("idempotency_key")),
                            _base(entry.get("base_version")),
                        ),
                        "id": request_id,
                    }
                    for entry in budgets
                ]
                return replies + [{"type": "budget.synced", "id": request_id}], None
            if kind == "budget.list":
                return [{"type": "budget.state", "id": request_id, "budgets": self.state()}], None
        except (KeyError, TypeError, ValueError) as e:
            return [], f"not a protocol message: {kind}: {e}"
        return [], f"not a protocol message: unknown type {kind!r}"

    # Enforcement.

    def effective(self, agent: str | None = None, segment: str | None = None) -> dict:
        """The limits for a hop of `agent` in `segment`: per limit, the
        agent's, else the segment's, else the global one."""
        with self._cond:
            layers = [
                self._applied.get(("agent", agent)),
                self._applied.get(("segment", segment)),
                self._applied.get(("global", None)),
            ]
        result = {}
        for layer in layers:
            if layer is None:
                continue
            for name, value in layer[1].items():
                if value is not None and name not in result:
                    result[name] = value
        return result

    def check_hop(self, agent, segment, input_tokens: int) -> tuple[int, dict | None]:
        """Before a call: (input to send, breach or None). The breach's
        `action` says what to do: `trim` (send the returned input), `warn`
        (send all), `abort` (raise RunBudgetExceeded), `pause` (wait for a
        budget change, then check again)."""
        limits = self.effective(agent, segment)
        limit = limits.get("per_hop_limit")
        if limit is None or input_tokens <= limit:
            return input_tokens, None
        action = limits.get("on_hop_breach") or "trim"
        allowed = {"trim": limit, "warn": input_tokens}.get(action, 0)
        breach = {
            "limit_kind": "per_hop",
            "limit": limit,
            "tokens": input_tokens,
            "action": action,
            "agent": agent,
            "segment": segment,
        }
        return allowed, breach

    def check_run(self, agent, segment, run_tokens: int, run_cost: Decimal) -> list[dict]:
        """After a call: the run limits exceeded (each with its action:
        `abort`, `warn` or `pause`; a run cannot be trimmed)."""
        limits = self.effective(agent, segment)
        action = limits.get("on_run_breach") or "abort"
        if action == "trim":
            action = "abort"
        breaches = []
        limit = limits.get("total_run_limit")
        if limit is not None and run_tokens > limit:
            breaches.append(
                {"limit_kind": "total_run", "limit": limit, "tokens": run_tokens, "action": action}
            )
        cost_limit = parse_usd(limits.get("run_cost_limit_usd"))
        if cost_limit is not None and run_cost > cost_limit:
            breaches.append(
                {
                    "limit_kind": "run_cost",
                    "limit": None,
                    "tokens": run_tokens,
                    "action": action,
                    "limit_usd": str(cost_limit),
                    "run_cost_usd": str(run_cost),
                }
            )
        for breach in breaches:
            breach.update(agent=agent, segment=segment)
        return breaches

    def wait_for_change(self, generation: int, timeout: float) -> bool:
        """Waits until a budget newer than `generation` is applied."""
        with self._cond:
            return self._cond.wait_for(lambda: self.generation != generation, timeout)

    # Notifications.

    def subscribe(self, listener: Callable[[dict], None]) -> None:
        with self._cond:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[dict], None]) -> None:
        with self._cond:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def notify(self, exceeded: dict) -> None:
        """Sends a `budget.exceeded` notification to every greeted client."""
        with self._cond:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(exceeded)


def _order(item):
    kind, name = item[0]
    return ({"global": 0, "agent": 1, "segment": 2}[kind], name or "")


def _version(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"version {value!r} is not a whole number")
    return value


def _base(value) -> int | None:
    """`base_version`: optional (clients before it existed do not send it)."""
    return None if value is None else _version(value)


def _key(value) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("idempotency_key must be a string")
    return value


# --- the control server ----------------------------------------------------


def parse_address(text: str) -> tuple[str, object]:
    """`unix:PATH` or a bare path -> ("unix", path); `tcp:HOST:PORT` on
    loopback -> ("tcp", (host, port))."""
    if text.startswith("tcp:"):
        host, _, port = text[4:].rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ValueError(f"'{text}': expected tcp:HOST:PORT")
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"'{text}': the control protocol only listens on loopback")
        return "tcp", (host, int(port))
    path = text[5:] if text.startswith("unix:") else text
    if not path:
        raise ValueError("an empty control address")
    return "unix", path


def bind_unix(path: str) -> socket.socket:
    """A listening Unix socket at `path`, mode 0600 from the start (bound in
    a private 0700 directory, then renamed into place). A stale socket is
    replaced only if nothing answers on it; anything else is never deleted."""
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise RuntimeError(f"'{path}' exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nothing answers
        else:
            raise RuntimeError(f"'{path}' is in use by a running process")
        finally:
            probe.close()
    private = tempfile.mkdtemp(prefix=".tokwatch-bind-", dir=os.path.dirname(os.path.abspath(path)))
    staged = os.path.join(private, "socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(staged)
        os.chmod(staged, 0o600)
        os.rename(staged, path)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    finally:
        if os.path.lexists(staged):
            os.unlink(staged)
        os.rmdir(private)
    return sock


class _Client:
    """One connection: replies and notifications, one line at a time."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._lock = threading.Lock()

    def send(self, message: dict) -> bool:
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            try:
                self.sock.sendall(line)
                return True
            except OSError:
                return False

    def notify(self, exceeded: dict) -> None:
        self.send({"type": "budget.exceeded", **exceeded})


class ControlServer:
    """Serves the control protocol for a controller: a thread per client."""

    def __init__(self, controller: BudgetController, address: str):
        self.controller = controller
        self.kind, self.target = parse_address(address)
        self._stopping = threading.Event()
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._ino = None
        self.address = address

    def start(self) -> "ControlServer":
        if self.kind == "unix":
            self._sock = bind_unix(self.target)
            self._ino = os.stat(self.target).st_ino
            self.address = f"unix:{self.target}"
        else:
            host, port = self.target
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(64)
            bound = self._sock.getsockname()
            self.address = f"tcp:{bound[0]}:{bound[1]}"
        self._sock.settimeout(0.2)
        threading.Thread(target=self._accept, name="control-accept", daemon=True).start()
        return self

    def stop(self) -> None:
        """Closes every connection and removes the socket if it is ours."""
        self._stopping.set()
        with self._lock:
            for sock in self._clients:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._sock is not None:
            self._sock.close()
        if self.kind == "unix":
            try:
                if os.stat(self.target).st_ino == self._ino:
                    os.unlink(self.target)
            except FileNotFoundError:
                pass

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            sock.settimeout(None)
            with self._lock:
                self._clients.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        client = _Client(sock)
        reader = sock.makefile("rb")
        greeted = False
        try:
            while not self._stopping.is_set():
                line = reader.readline(MAX_LINE_BYTES + 2)
                if not line.endswith(b"\n"):
                    if len(line) >= MAX_LINE_BYTES + 2:
                        self._refuse(client, f"line longer than the {MAX_LINE_BYTES}-byte limit")
                    break  # end of stream (or a line cut by it)
                body = line[:-1]
                if body.endswith(b"\r"):
                    body = body[:-1]
                if len(body) > MAX_LINE_BYTES:
                    self._refuse(client, f"line longer than the {MAX_LINE_BYTES}-byte limit")
                    break
                if not body.strip():
                    continue
                try:
                    request = json.loads(body)
                except (ValueError, UnicodeDecodeError) as e:
                    self._refuse(client, f"not a protocol message: {e}")
                    break
                replies, close = self.controller.handle(request, greeted)
                if close is not None:
                    self._refuse(client, close)
                    break
                for reply in replies:
                    if reply["type"] == "hello" and not greeted:
                        greeted = True
                        client.send(reply)
                        self.controller.subscribe(client.notify)
                    elif not client.send(reply):
                        return
        except OSError:
            pass
        finally:
            self.controller.unsubscribe(client.notify)
            with self._lock:
                self._clients.discard(sock)
            reader.close()
            sock.close()

    @staticmethod
    def _refuse(client: _Client, reason: str) -> None:
        log.info("closing a control connection: %s", reason)
        client.send({"type": "error", "reason": reason})


# --- telemetry and the agent loop -----------------------------------------


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Telemetry:
    """Native JSONL (docs/schema.md), one complete line per write. Counts
    only: no prompt or completion text is ever written."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        # NaN and infinities are not JSON: refused (ValueError), never
        # written as `NaN` for a reader to reject.
        line = json.dumps({k: v for k, v in record.items() if v is not None},
                          separators=(",", ":"), allow_nan=False)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


MODEL = "claude-sonnet-4-5"
# Dollars per million tokens (input, output), for run cost limits.
PRICES = {MODEL: (Decimal("3"), Decimal("15"))}
TASK_TOKENS = 700
# (agent, parent agent, task, tool, system prompt, output, tool result)
WORKFLOW = [
    ("planner", None, "plan", None, 2_200, 900, 0),
    ("researcher", "planner", "search", "web_search", 2_600, 450, 9_000),
    ("researcher", "planner", "read", "fetch_page", 2_600, 500, 11_000),
    ("writer", "planner", "draft", None, 3_400, 2_600, 0),
    ("critic", "planner", "review", None, 1_800, 1_200, 0),
    ("writer", "planner", "revise", None, 3_400, 2_200, 0),
]


def cost_of(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    price_in, price_out = PRICES[model]
    return (input_tokens * price_in + output_tokens * price_out) / Decimal(1_000_000)


class Run:
    def __init__(self, run_id: str, user: str, segment: str):
        self.run_id, self.user, self.segment = run_id, user, segment
        self.tokens = 0
        self.cost = Decimal(0)
        self.warned: set[str] = set()


def report_breach(controller, telemetry, run: Run, hop: int, breach: dict) -> None:
    """A breach goes to the telemetry (what tokwatch counts) and, as a
    notification, to every connected client."""
    ts = now_rfc3339()
    telemetry.write(
        {
            "type": "budget_exceeded",
            "ts": ts,
            "run_id": run.run_id,
            "hop": hop,
            "user": run.user,
            **breach,
        }
    )
    controller.notify(
        {
            "run_id": run.run_id,
            "hop": hop,
            "agent": breach.get("agent"),
            "segment": breach.get("segment"),
            "limit_kind": breach["limit_kind"],
            "limit": breach.get("limit"),
            "tokens": breach.get("tokens"),
            "action": breach["action"],
            "ts": ts,
        }
    )


def enforce_hop(controller, telemetry, run: Run, hop: int, agent: str, input_tokens: int,
                stop: threading.Event) -> int:
    """Before a call: the input to send. Raises RunBudgetExceeded (abort)
    or RunCancelled; holds the run while a `pause` budget is in force."""
    paused = False
    while True:
        generation = controller.generation
        allowed, breach = controller.check_hop(agent, run.segment, input_tokens)
        if breach is None:
            return input_tokens
        if breach["action"] != "pause" or not paused:
            report_breach(controller, telemetry, run, hop, breach)
        if breach["action"] in ("trim", "warn"):
            return allowed
        if breach["action"] == "abort":
            raise RunBudgetExceeded({**breach, "run_id": run.run_id})
        paused = True
        while not controller.wait_for_change(generation, 0.2):
            if stop.is_set():
                raise RunCancelled()


def enforce_run(controller, telemetry, run: Run, hop: int, agent: str,
                stop: threading.Event) -> None:
    """After a call: the run limits. Raises RunBudgetExceeded (abort) or
    RunCancelled; holds the run while a `pause` budget is in force."""
    paused: set[str] = set()
    while True:
        generation = controller.generation
        breaches = controller.check_run(agent, run.segment, run.tokens, run.cost)
        if not breaches:
            return
        action = breaches[0]["action"]
        for breach in breaches:
            kind = breach["limit_kind"]
            if action == "abort" or (action == "warn" and kind not in run.warned) or (
                action == "pause" and kind not in paused
            ):
                report_breach(controller, telemetry, run, hop, breach)
            (run.warned if action == "warn" else paused).add(kind)
        if action == "abort":
            raise RunBudgetExceeded({**breaches[0], "run_id": run.run_id})
        if action == "warn":
            return
        while not controller.wait_for_change(generation, 0.2):
            if stop.is_set():
                raise RunCancelled()


def run_workflow(controller, telemetry, run: Run, rng: random.Random, stop: threading.Event,
                 hop_seconds: float) -> str:
    """One run of the loop; every hop re-sends the whole history (the naive
    pattern budgets exist for). Returns the run's end status."""
    history = TASK_TOKENS
    status = "ok"
    try:
        for hop, (agent, parent, task, tool, system, output, tool_result) in enumerate(WORKFLOW, 1):
            sent = enforce_hop(controller, telemetry, run, hop, agent, system + history, stop)
            if stop.wait(hop_seconds):
                raise RunCancelled()
            output = output * rng.randint(85, 115) // 100
            telemetry.write(
                {
                    "ts": now_rfc3339(),
                    "run_id": run.run_id,
                    "hop": hop,
                    "agent": agent,
                    "parent_agent": parent,
                    "user": run.user,
                    "segment": run.segment,
                    "task": task,
                    "tool": tool,
                    "model": MODEL,
                    "input_tokens": sent,
                    "output_tokens": output,
                    "status": "ok",
                }
            )
            run.tokens += sent + output
            run.cost += cost_of(MODEL, sent, output)
            history += output + tool_result * rng.randint(85, 115) // 100
            enforce_run(controller, telemetry, run, hop, agent, stop)
    except RunBudgetExceeded:
        status = "aborted"
    except RunCancelled:
        status = "cancelled"
    telemetry.write({"type": "run_end", "ts": now_rfc3339(), "run_id": run.run_id, "status": status})
    return status


def run_agents(controller, telemetry, stop: threading.Event, rate: float = 2.0,
               runs: int | None = None, seed: int = 1, hop_seconds: float = 0.05) -> int:
    """Starts `rate` runs per second until `stop` (or `runs` runs); returns
    the number of runs started."""
    rng = random.Random(seed)
    prefix = controller.runtime_id[3:9]
    threads = []
    started = 0
    while not stop.is_set() and (runs is None or started < runs):
        started += 1
        tier = rng.choice(["free", "pro", "enterprise"])
        run = Run(f"py-{prefix}-{started:04d}", f"u{rng.randint(1, 9):02d}", f"py/{tier}")
        thread = threading.Thread(
            target=run_workflow,
            args=(controller, telemetry, run, random.Random(rng.random()), stop, hop_seconds),
            daemon=True,
        )
        thread.start()
        threads.append(thread)
        threads = [t for t in threads if t.is_alive()]
        stop.wait(1.0 / rate)
    for thread in threads:
        thread.join()
    return started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--control", required=True,
                        help="unix:PATH (or a path) or tcp:127.0.0.1:PORT to serve the control protocol on")
    parser.add_argument("--out", required=True, help="directory for the telemetry (runtime.jsonl)")
    parser.add_argument("--rate", type=float, default=2.0, help="runs started per second")
    parser.add_argument("--runs", type=int, help="stop after this many runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hop-seconds", type=float, default=0.05, help="how long a model call takes")
    parser.add_argument("--max-context", type=int, default=200_000,
                        help="largest context window: longer per-hop limits are refused")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="tokwatch_runtime: %(message)s")
    if not args.rate > 0:
        parser.error("--rate must be above 0")

    controller = BudgetController(max_context=args.max_context)
    telemetry = Telemetry(Path(args.out) / "runtime.jsonl")
    try:
        server = ControlServer(controller, args.control).start()
    except (OSError, RuntimeError, ValueError) as e:
        print(f"tokwatch_runtime: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"tokwatch_runtime: telemetry in {args.out}, control on {server.address}",
          file=sys.stderr, flush=True)
    try:
        run_agents(controller, telemetry, stop, args.rate, args.runs, args.seed, args.hop_seconds)
    finally:
        stop.set()
        server.stop()
        telemetry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
