#!/usr/bin/env python3
"""Native JSONL with many distinct keys, for the memory figures in BENCHMARKS.md.

    benches/distinct_keys.py runs 300000 > /tmp/runs300k.jsonl   # one single-hop run per line
    benches/distinct_keys.py agents 1000000 > /tmp/agents1m.jsonl # a new run and agent per line
    benches/distinct_keys.py runs 1000000 --socket /tmp/tw.sock   # the same, into a --listen socket
    benches/distinct_keys.py hops-desc 100000 > /tmp/desc.jsonl   # one run, hops in descending order

Every call is 1000 input + 100 output tokens of gpt-4.1 (listed price), so the
expected totals are exact: N events, N x 1100 tokens, N x $0.0028.
"""
import argparse
import socket
import sys


def lines(kind, n):
    ts = "2026-11-27T08:00:00.000Z"
    for i in range(n):
        if kind == "runs":
            run, hop, agent = f"r{i:08d}", 1, "agent"
        elif kind == "agents":
            run, hop, agent = f"r{i:08d}", 1, f"agent-{i:08d}"
        elif kind == "hops-desc":
            run, hop, agent = "one-run", n - i, "agent"
        elif kind == "hops-asc":
            run, hop, agent = "one-run", i + 1, "agent"
        else:
            raise SystemExit(f"unknown kind {kind}")
        yield (
            f'{{"ts":"{ts}","run_id":"{run}","hop":{hop},"agent":"{agent}",'
            f'"model":"gpt-4.1","input_tokens":1000,"output_tokens":100}}\n'
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["runs", "agents", "hops-desc", "hops-asc"])
    parser.add_argument("n", type=int)
    parser.add_argument("--socket", help="a unix socket tokwatch --listen's")
    parser.add_argument("--tcp", help="HOST:PORT tokwatch --listen's")
    args = parser.parse_args()
    if args.socket or args.tcp:
        if args.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(args.socket)
        else:
            host, port = args.tcp.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)))
        batch = []
        for line in lines(args.kind, args.n):
            batch.append(line)
            if len(batch) == 4096:
                sock.sendall("".join(batch).encode())
                batch.clear()
        sock.sendall("".join(batch).encode())
        sock.shutdown(socket.SHUT_WR)
        sock.close()
    else:
        out = sys.stdout
        for line in lines(args.kind, args.n):
            out.write(line)


if __name__ == "__main__":
    main()
