"""Burn-down of pgqueuer on PostgreSQL: our own driver, calling pgqueuer's public API.

One run against an EMPTY database (benches/peers/run creates a fresh one):
  1. install pgqueuer's schema with its own installer (Queries.install()),
  2. enqueue N no-op jobs with Queries.enqueue(list, list, list) -- the batch form
     (one INSERT ... SELECT FROM UNNEST per call), in chunks of --enqueue-chunk,
  3. drain: --procs processes x --workers QueueManagers each (one asyncpg connection
     per QueueManager), QueueManager.run(mode=drain, batch_size=B) -- batch dequeue,
     completions written by pgqueuer's buffered batch log; the clock runs from the
     release of the (already connected) workers to the return of the last run(),
     i.e. the last completion flushed,
  4. verify in the database: no row left in the queue table and N 'successful' rows in
     the log table.
Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import time
from datetime import timedelta

import asyncpg
import uvloop

import pgqueuer
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.types import QueueExecutionMode

ENTRYPOINT = "noop"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--enqueue-chunk", type=int, default=10_000)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="QueueManagers per process")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--dequeue-timeout-ms", type=int, default=100)
    return p.parse_args()


async def install_and_enqueue(url: str, n: int, chunk: int) -> float:
    conn = await asyncpg.connect(dsn=url)
    try:
        q = Queries(AsyncpgDriver(conn))
        await q.install()
        t0 = time.perf_counter()
        done = 0
        while done < n:
            k = min(chunk, n - done)
            ids = await q.enqueue([ENTRYPOINT] * k, [None] * k, [0] * k)
            assert len(ids) == k
            done += k
        return time.perf_counter() - t0
    finally:
        await conn.close()


async def drain_process(args: argparse.Namespace, ready, go) -> None:
    conns = [await asyncpg.connect(dsn=args.url) for _ in range(args.workers)]
    qms = []
    for c in conns:
        qm = QueueManager(Queries(AsyncpgDriver(c)))

        @qm.entrypoint(ENTRYPOINT)
        async def noop(job) -> None:  # no-op work
            return None

        qms.append(qm)
    ready.set()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, go.wait)
    await asyncio.gather(
        *(
            qm.run(
                batch_size=args.batch_size,
                mode=QueueExecutionMode.drain,
                dequeue_timeout=timedelta(milliseconds=args.dequeue_timeout_ms),
            )
            for qm in qms
        )
    )
    for c in conns:
        await c.close()


def child(args: argparse.Namespace, ready, go) -> None:
    uvloop.run(drain_process(args, ready, go))


async def verify(url: str, n: int) -> dict:
    conn = await asyncpg.connect(dsn=url)
    try:
        left = await conn.fetchval("SELECT count(*) FROM pgqueuer")
        ok = await conn.fetchval("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")
        other = await conn.fetchval(
            "SELECT count(*) FROM pgqueuer_log WHERE status NOT IN ('successful', 'queued', 'picked')"
        )
        return {"left_in_queue": left, "successful": ok, "other_final": other}
    finally:
        await conn.close()


def main() -> None:
    args = parse_args()
    enqueue_s = uvloop.run(install_and_enqueue(args.url, args.jobs, args.enqueue_chunk))

    ctx = mp.get_context("spawn")
    go = ctx.Event()
    readies = [ctx.Event() for _ in range(args.procs)]
    procs = [ctx.Process(target=child, args=(args, r, go)) for r in readies]
    for p in procs:
        p.start()
    for r in readies:
        if not r.wait(timeout=120):
            sys.exit("a drain process did not get ready")
    t0 = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    drain_s = time.perf_counter() - t0
    if any(p.exitcode != 0 for p in procs):
        sys.exit("a drain process failed")

    v = uvloop.run(verify(args.url, args.jobs))
    verified = v["left_in_queue"] == 0 and v["successful"] == args.jobs and v["other_final"] == 0
    print(
        json.dumps(
            {
                "peer": "pgqueuer",
                "version": pgqueuer.__version__,
                "jobs": args.jobs,
                "enqueue_seconds": enqueue_s,
                "enqueue_jobs_per_s": args.jobs / enqueue_s,
                "drain_seconds": drain_s,
                "drain_jobs_per_s": args.jobs / drain_s,
                "settings": {
                    "enqueue": f"Queries.enqueue(lists) in chunks of {args.enqueue_chunk}",
                    "procs": args.procs,
                    "queue_managers_per_proc": args.workers,
                    "batch_size": args.batch_size,
                    "dequeue_timeout_ms": args.dequeue_timeout_ms,
                    "driver": "AsyncpgDriver (one connection per QueueManager), uvloop",
                    "python": sys.version.split()[0],
                },
                "verify": v,
                "verified": verified,
            }
        )
    )
    if not verified:
        sys.exit(f"verification failed: {v}")


if __name__ == "__main__":
    main()
