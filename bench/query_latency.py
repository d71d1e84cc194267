"""Latency of the exposure query API while the workers are busy.

``python -m bench.query_latency [--workers 1|2] [--rate R] [--seconds S] [--clients C]``:
starts a private broker, produces a first part of the simulator feed (so enterprises have
scores, loans and flows) and waits for the workers to apply it; then produces the rest at
``R`` records/s for ``S`` seconds while ``C`` concurrent clients ask
``GET /v1/enterprises/{uscc}`` of the first worker without pause, for enterprises of the
feed drawn at random. With two workers about half of the requests are forwarded to the
other worker (the owner). Reports p50/p99/max of the answered (200/404) requests, the
query rate, 503s, and the rate the feed was offered.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from pathlib import Path

import aiohttp
import orjson

from adapters.simulator.province import build_province
from bench.broker import drop_namespace, namespace, private_broker
from bench.feed import EVENT_TOPICS, capture, produce
from bench.pipeline import start_workers, stop_workers, wait_all_ready
from bench.report import percentile
from schemas.catalog import partition_for
from tests.support.workers import scrape, total

TOKEN = "bench-query-token-0123456789"


async def _clients(
    port: int, usccs: list[str], clients: int, until: float, local: set[int]
) -> tuple[list[float], list[float], dict[int, int]]:
    """(latencies of all answers, of those forwarded to another worker, statuses)."""
    latencies: list[float] = []
    forwarded: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    rng = random.Random(7)

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < until:
            uscc = rng.choice(usccs)
            began = time.perf_counter()
            async with session.get(
                f"http://127.0.0.1:{port}/v1/enterprises/{uscc}", headers=headers
            ) as resp:
                await resp.read()
                took = time.perf_counter() - began
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if resp.status in (200, 404):
                latencies.append(took)
                if partition_for(uscc) not in local:
                    forwarded.append(took)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies, forwarded, statuses


def run(workers: int, rate: float, seconds: float, clients: int, log_dir: Path) -> dict[str, str]:
    warm = 20_000
    feed = capture(warm + int(rate * seconds), seed=7)
    usccs = [e.uscc for e in build_province(7, 2000).enterprises]
    with private_broker(45092) as bootstrap:
        settings = namespace(bootstrap, "query")
        procs = start_workers(
            settings,
            workers,
            log_dir,
            app_id=f"bench-q-{uuid.uuid4().hex[:6]}",
            DFIP_WORKER_API_TOKEN=TOKEN,
        )
        try:
            wait_all_ready(procs)
            asyncio.run(produce(settings, feed.records[:warm]))
            sent_events = sum(1 for r in feed.records[:warm] if r.topic in EVENT_TOPICS)
            deadline = time.monotonic() + 300
            while total(scrape(procs), "dfip_events_received_total") < sent_events * 0.9:
                if time.monotonic() > deadline:
                    raise RuntimeError("workers did not apply the warm-up feed")
                time.sleep(1)
            rest = feed.records[warm:]

            _, body = procs[0].get("/ready")
            local = set(orjson.loads(body)["partitions"])

            async def both() -> tuple[tuple[list[float], list[float], dict[int, int]], float]:
                until = time.monotonic() + seconds
                load = asyncio.ensure_future(produce(settings, rest, rate=rate))
                answers = await _clients(procs[0].port, usccs, clients, until, local)
                stats = await load
                return answers, stats.rate

            (lat, fwd, statuses), offered = asyncio.run(both())
        finally:
            stop_workers(procs)
            drop_namespace(settings)
    lat.sort()
    fwd.sort()
    answered = len(lat)
    return {
        "workers": str(workers),
        "clients": str(clients),
        "feed offered (records/s)": f"{offered:,.0f}",
        "queries answered (200/404) per s": f"{answered / seconds:,.0f}",
        "p50 ms": f"{1000 * (percentile(lat, 0.5) or 0):.1f}",
        "p99 ms": f"{1000 * (percentile(lat, 0.99) or 0):.1f}",
        "max ms": f"{1000 * (lat[-1] if lat else 0):.1f}",
        "forwarded answers": str(len(fwd)),
        "forwarded p50 ms": f"{1000 * (percentile(fwd, 0.5) or 0):.1f}",
        "forwarded p99 ms": f"{1000 * (percentile(fwd, 0.99) or 0):.1f}",
        "statuses": ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rate", type=float, default=3000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--log-dir", type=Path, default=Path("/tmp/dfip-bench-query"))
    args = ap.parse_args()
    result = run(args.workers, args.rate, args.seconds, args.clients, args.log_dir)
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
