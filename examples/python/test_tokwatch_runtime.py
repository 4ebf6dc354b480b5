"""Tests of the example runtime: the controller on its own, the protocol over
a Unix socket, and the real tokwatch binary against the running example
(`TOKWATCH_BIN`, else `tokwatch` on PATH).

    python3 -m unittest -v test_tokwatch_runtime
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import tokwatch_runtime as rt

HERE = Path(__file__).resolve().parent
WAIT = 10.0


def tokwatch_binary() -> str | None:
    """The binary under test: TOKWATCH_BIN (must exist when set), else PATH."""
    given = os.environ.get("TOKWATCH_BIN")
    if given:
        if not os.access(given, os.X_OK):
            raise AssertionError(f"TOKWATCH_BIN={given} is not an executable")
        return given
    return shutil.which("tokwatch")


class Client:
    """A line-oriented protocol client that keeps notifications aside."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT)
        self.sock.connect(path)
        self.reader = self.sock.makefile("rb")
        self.notes: list[dict] = []

    def send(self, message: dict) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def line(self) -> dict | None:
        line = self.reader.readline()
        return json.loads(line) if line else None

    def reply(self) -> dict:
        while True:
            message = self.line()
            if message is None:
                raise AssertionError("connection closed")
            if message["type"] != "budget.exceeded":
                return message
            self.notes.append(message)

    def hello(self) -> dict:
        self.send({"type": "hello", "protocol": 1, "client": "test"})
        return self.reply()

    def closed(self) -> bool:
        while (message := self.line()) is not None:
            if message["type"] != "budget.exceeded":
                return False
        return True

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def budget_set(id_, key, scope, version, limits) -> dict:
    return {"type": "budget.set", "id": id_, "idempotency_key": key, "scope": scope,
            "version": version, "limits": limits}


GLOBAL = {"kind": "global"}


class ControllerTest(unittest.TestCase):
    def test_versions_keys_and_validation(self):
        c = rt.BudgetController()
        self.assertEqual(c.set_budget(GLOBAL, 2, {"per_hop_limit": 9000}, "k2"),
                         {"type": "budget.ack", "scope": GLOBAL, "version": 2})
        # An old version is another controller's stale change: refused (not
        # acknowledged) with what is in force, nothing changes.
        self.assertEqual(c.set_budget(GLOBAL, 1, {"per_hop_limit": 1}, "k1"),
                         {"type": "budget.nack", "scope": GLOBAL, "version": 1,
                          "applied_version": 2, "code": "conflict",
                          "limits": {"per_hop_limit": 9000},
                          "reason": "v1 is not newer than v2 in force (set by another controller)"})
        self.assertEqual(c.effective()["per_hop_limit"], 9000)
        # The same key: the same answer, whatever it carries.
        self.assertEqual(c.set_budget(GLOBAL, 9, {"per_hop_limit": 5}, "k2")["version"], 2)
        nack = c.set_budget(GLOBAL, 3, {"per_hop_limit": 90000, "total_run_limit": 60000}, "k3")
        self.assertEqual(nack, {"type": "budget.nack", "scope": GLOBAL, "version": 3,
                                "applied_version": 2,
                                "reason": "per_hop_limit (90000) exceeds total_run_limit (60000)"})
        self.assertEqual(c.effective()["per_hop_limit"], 9000)
        for limits, reason in [
            ({}, "a budget needs at least one limit"),
            ({"per_hop_limit": 0}, "per_hop_limit must be greater than 0"),
            ({"run_cost_limit_usd": "-1"}, "is not a positive amount of dollars"),
            ({"per_hop_limit": 10, "on_hop_breach": "explode"}, "is not one of"),
            ({"per_hop": 10}, "unknown limit 'per_hop'"),
            ({"per_hop_limit": 500_000}, "largest context window"),
        ]:
            with self.subTest(limits=limits):
                answer = c.set_budget(GLOBAL, 10, limits)
                self.assertEqual(answer["type"], "budget.nack")
                self.assertIn(reason, answer["reason"])

    def test_a_change_based_on_an_older_version_than_in_force_is_a_conflict(self):
        c = rt.BudgetController()
        c.set_budget(GLOBAL, 1, {"per_hop_limit": 9000}, "a1", base_version=0)
        # Based on v0 although v1 is in force: someone else changed it since.
        conflict = c.set_budget(GLOBAL, 2, {"per_hop_limit": 20000}, "b1", base_version=0)
        self.assertEqual((conflict["type"], conflict["code"], conflict["applied_version"],
                          conflict["limits"]),
                         ("budget.nack", "conflict", 1, {"per_hop_limit": 9000}))
        self.assertIn("based on v0 but v1 is in force", conflict["reason"])
        self.assertEqual(c.effective()["per_hop_limit"], 9000)
        # Rebased on v1: applied; the state says whose change is in force.
        rebased = c.set_budget(GLOBAL, 2, {"per_hop_limit": 20000}, "b2", base_version=1)
        self.assertEqual(rebased, {"type": "budget.ack", "scope": GLOBAL, "version": 2})
        self.assertEqual(c.state(), [{"scope": GLOBAL, "version": 2,
                                      "limits": {"per_hop_limit": 20000},
                                      "idempotency_key": "b2"}])
        # The change in force sent again (a sync after its answer was
        # forgotten) is acknowledged: it is applied.
        c._answers.clear()
        self.assertEqual(c.set_budget(GLOBAL, 2, {"per_hop_limit": 20000}, "b2", base_version=1)["type"],
                         "budget.ack")

    def test_an_empty_key_is_no_key(self):
        # Two controllers sending empty (or blank) keys make different
        # changes: each is processed, none gets another's remembered answer.
        c = rt.BudgetController()
        self.assertEqual(c.set_budget(GLOBAL, 1, {"per_hop_limit": 9000}, ""),
                         {"type": "budget.ack", "scope": GLOBAL, "version": 1})
        self.assertEqual(c.set_budget(GLOBAL, 2, {"per_hop_limit": 5000}, ""),
                         {"type": "budget.ack", "scope": GLOBAL, "version": 2})
        self.assertEqual(c.set_budget(GLOBAL, 3, {"per_hop_limit": 4000}, "  "),
                         {"type": "budget.ack", "scope": GLOBAL, "version": 3})
        self.assertEqual(c.effective()["per_hop_limit"], 4000)
        self.assertEqual(c.state(), [{"scope": GLOBAL, "version": 3,
                                      "limits": {"per_hop_limit": 4000}}])

    def test_precedence_is_per_limit_agent_then_segment_then_global(self):
        c = rt.BudgetController()
        c.set_budget(GLOBAL, 1, {"per_hop_limit": 100, "total_run_limit": 1000, "on_run_breach": "warn"})
        c.set_budget({"kind": "segment", "name": "pro"}, 1, {"total_run_limit": 5000})
        c.set_budget({"kind": "agent", "name": "writer"}, 1, {"per_hop_limit": 400})
        writer_pro = c.effective("writer", "pro")
        self.assertEqual((writer_pro["per_hop_limit"], writer_pro["total_run_limit"]), (400, 5000))
        self.assertEqual(writer_pro["on_run_breach"], "warn")
        other = c.effective("planner", "free")
        self.assertEqual((other["per_hop_limit"], other["total_run_limit"]), (100, 1000))

    def test_check_hop_and_run(self):
        c = rt.BudgetController()
        self.assertEqual(c.check_hop("writer", "pro", 12_000), (12_000, None))
        c.set_budget(GLOBAL, 1, {"per_hop_limit": 5000, "run_cost_limit_usd": "0.10"})
        allowed, breach = c.check_hop("writer", "pro", 12_000)
        self.assertEqual(allowed, 5000)
        self.assertEqual((breach["limit_kind"], breach["limit"], breach["tokens"], breach["action"]),
                         ("per_hop", 5000, 12_000, "trim"))
        self.assertEqual(c.check_hop("writer", "pro", 4000), (4000, None))
        c.set_budget({"kind": "agent", "name": "writer"}, 1, {"per_hop_limit": 3000, "on_hop_breach": "warn"})
        self.assertEqual(c.check_hop("writer", "pro", 4000)[0], 4000)
        self.assertEqual(c.check_run("writer", "pro", 50_000, Decimal("0.09")), [])
        [over] = c.check_run("writer", "pro", 50_000, Decimal("0.11"))
        self.assertEqual((over["limit_kind"], over["action"], over["limit_usd"]), ("run_cost", "abort", "0.10"))

    def test_a_paused_run_resumes_when_the_limit_is_raised(self):
        c = rt.BudgetController()
        c.set_budget(GLOBAL, 1, {"per_hop_limit": 1000, "on_hop_breach": "pause"})
        with tempfile.TemporaryDirectory() as tmp:
            telemetry = rt.Telemetry(Path(tmp) / "t.jsonl")
            run = rt.Run("r1", "u1", "pro")
            result = {}
            stop = threading.Event()
            worker = threading.Thread(target=lambda: result.update(
                sent=rt.enforce_hop(c, telemetry, run, 1, "writer", 4000, stop)))
            worker.start()
            time.sleep(0.3)
            self.assertTrue(worker.is_alive(), "held while paused")
            c.set_budget(GLOBAL, 2, {"per_hop_limit": 8000})
            worker.join(WAIT)
            self.assertEqual(result, {"sent": 4000})
            telemetry.close()
            lines = [json.loads(l) for l in (Path(tmp) / "t.jsonl").read_text().splitlines()]
            self.assertEqual([(l["type"], l["action"]) for l in lines], [("budget_exceeded", "pause")])


class TelemetryTest(unittest.TestCase):
    def test_a_record_that_is_not_json_is_refused_not_written(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "t.jsonl"
            telemetry = rt.Telemetry(path)
            telemetry.write({"run_id": "r1", "input_tokens": 5})
            for bad in (float("nan"), float("inf")):
                with self.assertRaises(ValueError):
                    telemetry.write({"run_id": "r1", "cost_usd": bad})
            telemetry.close()
            self.assertEqual(path.read_text(), '{"run_id":"r1","input_tokens":5}\n')


class ProtocolTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "c.sock")
        self.controller = rt.BudgetController()
        self.server = rt.ControlServer(self.controller, f"unix:{self.path}").start()

    def tearDown(self):
        self.server.stop()
        self.tmp.cleanup()

    def test_round_trip(self):
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        client = Client(self.path)
        hello = client.hello()
        self.assertEqual((hello["type"], hello["protocol"], hello["applied"]), ("hello", 1, []))
        client.send(budget_set("1", "k1", GLOBAL, 1, {"per_hop_limit": 9000}))
        self.assertEqual(client.reply(), {"type": "budget.ack", "id": "1", "scope": GLOBAL, "version": 1})
        client.send({"type": "budget.sync", "id": "s", "budgets": [
            {"scope": GLOBAL, "version": 1, "idempotency_key": "k1", "limits": {"per_hop_limit": 9000}},
            {"scope": {"kind": "agent", "name": "writer"}, "version": 1, "limits": {"per_hop_limit": 1}},
            {"scope": {"kind": "segment", "name": "pro"}, "version": 1, "limits": {}},
        ]})
        replies = [client.reply() for _ in range(4)]
        self.assertEqual([r["type"] for r in replies],
                         ["budget.ack", "budget.ack", "budget.nack", "budget.synced"])
        self.assertTrue(all(r["id"] == "s" for r in replies))
        client.send({"type": "budget.list", "id": "l"})
        state = client.reply()
        self.assertEqual([(b["scope"]["kind"], b["version"]) for b in state["budgets"]],
                         [("global", 1), ("agent", 1)])
        # Notifications reach greeted clients.
        self.controller.notify({"run_id": "r", "limit_kind": "per_hop", "action": "trim"})
        client.send({"type": "budget.list", "id": "l2"})
        client.reply()
        self.assertEqual(client.notes[0]["run_id"], "r")
        client.close()

    def test_empty_keys_over_the_socket_are_processed(self):
        first, second = Client(self.path), Client(self.path)
        first.hello()
        second.hello()
        first.send(budget_set("a", "", GLOBAL, 1, {"per_hop_limit": 9000}))
        self.assertEqual(first.reply(), {"type": "budget.ack", "id": "a", "scope": GLOBAL, "version": 1})
        second.send(budget_set("b", "", GLOBAL, 2, {"per_hop_limit": 5000}))
        self.assertEqual(second.reply(), {"type": "budget.ack", "id": "b", "scope": GLOBAL, "version": 2})
        first.send({"type": "budget.list", "id": "l"})
        self.assertEqual(first.reply()["budgets"],
                         [{"scope": GLOBAL, "version": 2, "limits": {"per_hop_limit": 5000}}])
        first.close()
        second.close()

    def test_refusals_close_the_connection(self):
        cases = [
            ({"type": "hello", "protocol": 2, "client": "x"}, "unsupported protocol 2", False),
            ({"type": "budget.list", "id": "1"}, "hello", False),
            ({"type": "budget.delete", "id": "1"}, "not a protocol message", True),
        ]
        for message, reason, greet in cases:
            with self.subTest(message=message):
                client = Client(self.path)
                if greet:
                    client.hello()
                client.send(message)
                error = client.reply()
                self.assertEqual(error["type"], "error")
                self.assertIn(reason, error["reason"])
                self.assertTrue(client.closed())
                client.close()
        for raw, reason in [(b"{not json\n", "not a protocol message"),
                            (b" " * (rt.MAX_LINE_BYTES + 10) + b"\n", "limit")]:
            client = Client(self.path)
            client.hello()
            try:
                client.sock.sendall(raw)
            except OSError:
                pass
            error = client.reply()
            self.assertIn(reason, error["reason"])
            self.assertTrue(client.closed())
            client.close()

    def test_stale_sockets_are_replaced_live_ones_kept(self):
        with self.assertRaisesRegex(RuntimeError, "in use"):
            rt.bind_unix(self.path)
        stale = os.path.join(self.tmp.name, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(stale)
        s.close()
        rt.bind_unix(stale).close()
        plain = os.path.join(self.tmp.name, "plain")
        Path(plain).write_text("data")
        with self.assertRaisesRegex(RuntimeError, "not a socket"):
            rt.bind_unix(plain)
        self.assertEqual(Path(plain).read_text(), "data")


class BinaryTest(unittest.TestCase):
    """The real tokwatch binary against the running example runtime."""

    @classmethod
    def setUpClass(cls):
        cls.bin = tokwatch_binary()
        if cls.bin is None:
            raise unittest.SkipTest("no tokwatch binary: set TOKWATCH_BIN or put tokwatch on PATH")

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        base = Path(self.tmp.name)
        self.sock = str(base / "rt.sock")
        self.out = base / "out"
        self.budgets = str(base / "b.toml")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "tokwatch_runtime.py"), "--control", self.sock,
             "--out", str(self.out), "--rate", "10", "--hop-seconds", "0.03"],
            stderr=subprocess.PIPE, text=True)
        ready = self.proc.stderr.readline()
        self.assertIn("control on unix:", ready)
        # Keep reading its log so that the pipe never fills.
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def tearDown(self):
        self.proc.terminate()
        self.assertEqual(self.proc.wait(WAIT), 0, "".join(self.log))
        self.tmp.cleanup()

    def tokwatch(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run([self.bin, *args], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "NO_COLOR": "1"})

    def budget(self, *args) -> subprocess.CompletedProcess:
        return self.tokwatch("budget", *args, "--control", f"unix:{self.sock}",
                             "--budgets", self.budgets)

    def records(self) -> list[dict]:
        text = (self.out / "runtime.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]

    def test_tokwatch_pushes_budgets_and_reports_breaches(self):
        time.sleep(1.0)
        before = len(self.records())
        pushed = self.budget("set", "--global", "--per-hop-limit", "5000")
        self.assertEqual(pushed.returncode, 0, pushed.stderr)
        self.assertIn("applied v1", pushed.stdout)
        acked = datetime.now(timezone.utc)
        time.sleep(1.5)
        after = self.records()[before:]
        hops = [r for r in after if "type" not in r]
        breaches = [r for r in after if r.get("type") == "budget_exceeded"]
        self.assertTrue(hops and breaches)
        # Hops that started after the ack are trimmed to the limit.
        late = [r for r in hops
                if datetime.fromisoformat(r["ts"]) > acked + timedelta(seconds=0.2)]
        self.assertTrue(late and all(r["input_tokens"] <= 5000 for r in late), late[:3])
        self.assertTrue(all(b["limit"] == 5000 and b["action"] == "trim" for b in breaches))

        listed = self.budget("list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("per-hop 5000", listed.stdout)

        # Refused by tokwatch before sending: per-hop above the run limit.
        bad = self.budget("set", "--global", "--per-hop-limit", "9000", "--run-limit", "5000")
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("per_hop_limit (9000) exceeds total_run_limit (5000)", bad.stderr)
        # Refused by the runtime (a nack): longer than its context window.
        nack = self.budget("set", "--global", "--per-hop-limit", "500000")
        self.assertNotEqual(nack.returncode, 0)
        self.assertIn("context window", nack.stderr)
        listed = self.budget("get", "--global")
        self.assertIn("per-hop 5000", listed.stdout, "the previous limits stay in force")

        report = self.tokwatch("report", str(self.out), "--format", "json")
        self.assertEqual(report.returncode, 0, report.stderr)
        doc = json.loads(report.stdout)
        self.assertGreater(doc["totals"]["budget_exceeded_events"], 0)
        self.assertEqual(doc["ingest"]["malformed"], 0)
        limited = [b for run in doc["runs"] for b in run["budget_exceeded"]]
        self.assertTrue(limited and all(b["limit"] == 5000 for b in limited))

    def test_two_controllers_each_change_is_based_on_what_is_in_force(self):
        other_store = str(Path(self.tmp.name) / "other.toml")
        first = self.budget("set", "--global", "--per-hop-limit", "9000")
        self.assertIn("applied v1", first.stdout, first.stderr)
        # Another controller with its own store: based on v1 (from hello), v2.
        other = self.tokwatch("budget", "set", "--global", "--per-hop-limit", "7000",
                              "--control", f"unix:{self.sock}", "--budgets", other_store)
        self.assertEqual(other.returncode, 0, other.stderr)
        self.assertIn("applied v2", other.stdout)
        self.assertIn("per-hop 7000", self.budget("get", "--global").stdout)
        # The first controller again: based on v2 now, v3 wins.
        again = self.budget("set", "--global", "--per-hop-limit", "5000")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("applied v3", again.stdout)
        self.assertIn("v3    per-hop 5000", self.budget("get", "--global").stdout)


if __name__ == "__main__":
    unittest.main()
