#!/usr/bin/env python3
"""Benchmark: OPRF index build, single-serial lookups and a bulk check, over loopback HTTP.

Two nodes of the multi-node harness (`tests.harness.Federation`) serve their
federation API on real loopback ports: the querier FRA and the owner DEU,
which holds N generated records (imported through `node.imports.import_csv`,
not timed). Prints one JSON line, all measured in this run:

- the OPRF index build (`node.lookup_index.refresh(key)`, which evaluates every
  active record in a process pool): seconds, records/s, and bytes per indexed
  record of the published full index document;
- the first lookup (it downloads the owner's index), then after a warm-up the
  p50/p95 latency of a single-serial miss (evaluation, then the index check)
  and of a single-serial hit (with its confirmation);
- a bulk check of B serials in one `lookup` call (about 1 % held by the
  owner): serials/s end to end, serials/s of the same cryptographic work done
  in-process with no I/O (client blind, server evaluate + proof, client
  verify_proof + finalize), and their ratio (both nodes share this process
  and its event loop, so end to end carries both sides' cryptography on one
  core just as crypto-only does: the ratio is the share left after HTTP,
  signatures, the database, auditing and the ~1 % confirmations);
- the owner's CPU time per single-serial evaluation request: the owner is
  then restarted as a real `iarms-node run` process on the same data and
  port, and once it has settled (startup and its first index refresh done)
  its user + system CPU time (/proc/PID/stat, all its threads) is read
  around each run of 50 of R more single-serial misses: the median per
  request;
- the peak RSS of this process.

Each figure is judged against its floor, measured in the same run, and the
ratio is printed (README, Performance; `floors.py`): `index_crypto_floor_s`
(the same evaluations on two worker processes, nothing else) and
`index_vs_floor`; `lookup_crypto_ms`, the cryptography of one single-serial
lookup in-process, both sides, OPRF (`lookup_crypto_oprf_ms`) plus the
envelopes' Ed25519 signatures and verifications each way
(`lookup_crypto_envelopes_ms`), and `miss_vs_crypto`; `owner_crypto_per_eval_ms`
(verify the request, evaluate and prove one element, sign the answer) and
`owner_cpu_vs_crypto`.

    .venv/bin/python scripts/bench/lookup.py [--records 1000000] [--lookups 300]
        [--bulk 10000] [--owner-requests 1000]

Targets (ratios hold across machines): index build <= 1.3 x its two-core
cryptographic floor, miss p50 <= 4 x the cryptography of one lookup, the
owner's CPU per evaluation request <= 4 x its cryptography, bulk end to end
>= 0.5 x crypto only; hit p50 <= 10 ms.
Nothing here fails on time; a wrong lookup answer is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for the one harness: tests/

from common import percentiles, positive, say
from floors import FLOOR_WORKERS, LookupCrypto, index_crypto_floor_s
from procs import cpu_s, start_node, stop_node, wait_quiet, wait_serving

from node.clock import SystemClock
from node.lookup import oprf
from node.lookup.querier import MAX_SERIALS, LookupResult, Query
from node.protocol.envelope import to_ms
from node.protocol.model import Service
from node.protocol.ratelimit import RateLimitConfig
from node.records.serials import canonicalise_serial
from node.records.synthetic import generate_rows, write_csv
from tests.harness import Federation, Member

CASE = "BENCH-2026-0001"
ACTOR = "bench"
SEED = 7
#: Rows of the generated file the hit serials are drawn from.
SAMPLE_ROWS = 50_000
WARMUP = 10
#: Single-serial lookups whose cryptography alone is timed (the median is kept).
CRYPTO_SAMPLES = 500
#: The owner's CPU time is read before and after each run of this many requests, and the
#: median per request kept: its index refresh every 30 s (`node.server`; a scan of every
#: record) spoils one run, not the figure.
CPU_CHUNK = 50
BULK_HIT_SHARE = 0.01


def _held_queries(n: int) -> list[Query]:
    """Serials (as officers typed them) and makes of generated records that stay indexed."""
    return [
        Query(row["serial_number"], row["make"])
        for row in generate_rows(min(n, SAMPLE_ROWS), seed=SEED)
        if row["status"] != "recovered"
    ]


def _missing_queries(prefix: str, count: int) -> list[Query]:
    """Serials no generated record has (no make pattern spells these letters)."""
    return [Query(f"{prefix}-{i:07d}") for i in range(count)]


def _only(results: list[LookupResult], expected: str) -> LookupResult:
    """The one peer's answer to a one-serial lookup, checked."""
    if len(results) != 1 or results[0].result != expected:
        raise RuntimeError(f"expected one {expected!r} answer, got {results!r}")
    return results[0]


async def _lookup_ms(querier: Member, queries: Iterable[Query], expected: str) -> list[float]:
    """Milliseconds of each single-serial lookup, in order."""
    samples = []
    for query in queries:
        start = time.perf_counter()
        results = await querier.f.lookups.lookup([query], CASE, ACTOR)
        samples.append((time.perf_counter() - start) * 1000)
        _only(results, expected)
    return samples


async def _build(owner: Member, n: int, workdir: Path) -> dict[str, float | int]:
    """Import `n` records into the owner (untimed) and time its index build."""
    csv_path = workdir / "records.csv"
    say(f"generating {n:,} records")
    write_csv(csv_path, n, seed=SEED, progress=True)
    size = csv_path.stat().st_size
    say("importing them into DEU (not timed)")
    start = time.perf_counter()
    with tqdm(total=size, unit="B", unit_scale=True, file=sys.stderr) as bar:
        report = await owner.n.imports.import_csv(
            csv_path, ACTOR, progress=lambda done: bar.update(done - bar.n)
        )
    import_s = time.perf_counter() - start
    csv_path.unlink()
    if report.rejected:
        raise RuntimeError(f"the import rejected {report.rejected} generated rows")

    shares = await _write_shares(owner, workdir)
    say("building DEU's OPRF index (timed)")
    with tqdm(total=report.created, unit="records", file=sys.stderr) as bar:
        start = time.perf_counter()
        version = await owner.n.lookup_index.refresh(
            owner.k.oprf, progress=lambda done, _: bar.update(done - bar.n)
        )
        build_s = time.perf_counter() - start
    documents = await owner.n.lookups_store.get_documents(None)
    if version != 1 or len(documents) != 1:
        raise RuntimeError(f"expected one full index document, got version {version}")
    indexed = len(await owner.n.lookups_store.get_prefixes())
    say(f"the same evaluations alone on {FLOOR_WORKERS} worker processes (the floor)")
    evaluated, floor_s = await index_crypto_floor_s(owner.k.oprf, shares)
    if evaluated != indexed:
        raise RuntimeError(f"the floor evaluated {evaluated} serials, the index build {indexed}")
    return {
        "records": n,
        "indexed_records": indexed,
        "import_s": round(import_s, 3),
        "index_build_s": round(build_s, 3),
        "index_records_per_s": round(indexed / build_s),
        "index_bytes_per_record": round(len(documents[0][2]) / indexed, 2),
        "index_crypto_floor_s": round(floor_s, 3),
        "index_vs_floor": round(build_s / floor_s, 3),
    }


async def _write_shares(owner: Member, workdir: Path) -> list[Path]:
    """The canonical serials the index build will evaluate, dealt into one file per floor worker."""
    paths = [workdir / f"floor-share-{i}.txt" for i in range(FLOOR_WORKERS)]
    files = [path.open("w") for path in paths]
    after, count = 0, 0
    try:
        while batch := await owner.n.lookups_store.get_unindexed(10_000, after):
            for _id, serial in batch:
                files[count % FLOOR_WORKERS].write(serial + "\n")
                count += 1
            after = batch[-1][0]
    finally:
        for file in files:
            file.close()
    return paths


async def _latency(
    querier: Member, owner: Member, held: list[Query], lookups: int, rng: random.Random
) -> dict[str, float]:
    """First lookup (downloads the index), then p50/p95 of single misses and hits."""
    misses = _missing_queries("NOTHELD", 1 + WARMUP + lookups)
    hits = [rng.choice(held) for _ in range(WARMUP + lookups)]
    say("first lookup (downloads DEU's index)")
    first_s = (await _lookup_ms(querier, misses[:1], "no_hit"))[0] / 1000
    await _lookup_ms(querier, misses[1 : 1 + WARMUP], "no_hit")
    await _lookup_ms(querier, hits[:WARMUP], "hit")
    say(f"{lookups} single-serial misses, then {lookups} hits")
    miss_p50, miss_p95 = percentiles(
        await _lookup_ms(querier, tqdm(misses[1 + WARMUP :], file=sys.stderr), "no_hit")
    )
    hit_p50, hit_p95 = percentiles(
        await _lookup_ms(querier, tqdm(hits[WARMUP:], file=sys.stderr), "hit")
    )
    say("the cryptography of one single-serial lookup alone, in-process (the floor)")
    crypto = LookupCrypto(querier.k.signing, owner.k.signing, owner.k.oprf).lookup_ms(
        _canonical(_missing_queries("CRYPTO", CRYPTO_SAMPLES)), to_ms(querier.clock.now())
    )
    return crypto | {
        "first_lookup_s": round(first_s, 3),
        "miss_p50_ms": round(miss_p50, 2),
        "miss_p95_ms": round(miss_p95, 2),
        "hit_p50_ms": round(hit_p50, 2),
        "hit_p95_ms": round(hit_p95, 2),
        "miss_vs_crypto": round(miss_p50 / crypto["lookup_crypto_ms"], 3),
    }


def _canonical(queries: Iterable[Query]) -> list[str]:
    return [canonicalise_serial(q.serial) for q in queries]


def _crypto_only(sk: bytes, queries: list[Query]) -> float:
    """Seconds for the batch's OPRF work alone, in-process: both sides, no I/O."""
    inputs = [oprf.serial_input(c) for c in _canonical(queries)]
    pk = oprf.public_key(sk)
    start = time.perf_counter()
    blinded = [oprf.blind(x, oprf.MODE_VOPRF) for x in inputs]
    elements = [b for _r, b in blinded]
    evaluated, proof = oprf.evaluate(sk, elements, oprf.MODE_VOPRF)
    assert proof is not None
    oprf.verify_proof(pk, elements, evaluated, proof)
    for x, (r, _b), e in zip(inputs, blinded, evaluated, strict=True):
        oprf.finalize(x, r, e)
    return time.perf_counter() - start


async def _bulk(
    querier: Member, owner: Member, held: list[Query], bulk: int, rng: random.Random
) -> dict[str, float | int]:
    """One lookup of `bulk` serials, ~1 % held, against the crypto-only time of the same batch."""
    present = max(1, round(bulk * BULK_HIT_SHARE))
    queries = [rng.choice(held) for _ in range(present)]
    queries += _missing_queries("BULKMISS", bulk - present)
    rng.shuffle(queries)
    say(f"bulk check of {bulk:,} serials ({present} held by DEU)")
    stalls: list[float] = []
    ticker = asyncio.ensure_future(_tick(stalls))
    start = time.perf_counter()
    results = await querier.f.lookups.lookup(queries, CASE, ACTOR)
    bulk_s = time.perf_counter() - start
    ticker.cancel()
    found = sum(r.result == "hit" for r in results)
    if (
        len(results) != bulk
        or found != present
        or any(r.result not in ("hit", "no_hit") for r in results)
    ):
        raise RuntimeError(f"bulk check: {found} hits of {present} expected in {len(results)}")
    say("the same batch's cryptography alone, in-process")
    crypto_s = _crypto_only(owner.k.oprf, queries)
    return {
        "bulk_serials": bulk,
        "bulk_hits": found,
        "bulk_s": round(bulk_s, 3),
        "bulk_serials_per_s": round(bulk / bulk_s),
        "bulk_crypto_serials_per_s": round(bulk / crypto_s),
        "bulk_vs_crypto": round(crypto_s / bulk_s, 3),
        # How late a 10 ms timer fired at worst while the bulk ran (both nodes share the loop).
        "bulk_loop_stall_max_ms": round(max(stalls, default=0.0) * 1000, 1),
    }


async def _tick(stalls: list[float], every_s: float = 0.01) -> None:
    """Note how late each `every_s` sleep wakes: the event loop's stalls."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(every_s)
        stalls.append(time.perf_counter() - before - every_s)


async def _owner_cpu(
    fed: Federation, querier: Member, owner: Member, requests: int, workdir: Path
) -> dict[str, float | int]:
    """The owner's CPU time per single-serial evaluation request, as a real process,
    against the cryptography of one such request in-process."""
    await fed.stop(owner.country)
    # The harness's clock stood still while the index was built: the real owner's runs.
    fed.clock.advance(max(0.0, (SystemClock().now() - fed.clock.now()).total_seconds()))
    log = workdir / "owner.log"
    say(f"DEU again, as `iarms-node run`: its CPU time over {requests} single-serial misses")
    proc = start_node(owner.data_dir, log)
    try:
        await asyncio.to_thread(wait_serving, proc, owner.data_dir, log)
        misses = _missing_queries("OWNERCPU", WARMUP + requests)
        for query in misses[:WARMUP]:  # the first may find the old server's connection closed
            await querier.f.lookups.lookup([query], CASE, ACTOR)
        await asyncio.to_thread(wait_quiet, proc.pid)
        per_eval = []
        with tqdm(total=requests, file=sys.stderr) as bar:
            for i in range(WARMUP, len(misses), CPU_CHUNK):
                chunk = misses[i : i + CPU_CHUNK]
                before = cpu_s(proc.pid)
                await _lookup_ms(querier, chunk, "no_hit")
                per_eval.append((cpu_s(proc.pid) - before) * 1000 / len(chunk))
                bar.update(len(chunk))
    finally:
        stop_node(proc)
    crypto = LookupCrypto(querier.k.signing, owner.k.signing, owner.k.oprf).owner_ms(
        _canonical(_missing_queries("OWNERCRYPTO", CRYPTO_SAMPLES)), to_ms(querier.clock.now())
    )
    cpu = statistics.median(per_eval)
    return {
        "owner_cpu_requests": requests,
        "owner_cpu_per_eval_ms": round(cpu, 3),
        "owner_crypto_per_eval_ms": round(crypto, 3),
        "owner_cpu_vs_crypto": round(cpu / crypto, 3),
    }


async def bench(
    n: int, lookups: int, bulk: int, owner_requests: int, workdir: Path
) -> dict[str, float | int]:
    """Run every phase against a fresh two-node federation in `workdir`."""
    # The harness's clock stands still, so the owner's token bucket never refills:
    # every evaluation of the run (and each confirmation costs one) must fit in one burst.
    evaluations = 2 * (1 + 2 * (WARMUP + lookups) + bulk)
    default = RateLimitConfig()
    limit = None if evaluations <= default.capacity else RateLimitConfig(capacity=evaluations)
    fed = Federation(workdir / "federation", rate_limit=limit, http=True)
    try:
        querier, owner = await fed.add("FRA"), await fed.add("DEU")
        await fed.peer_all(Service.LOOKUPS, Service.HIT_DETAILS)
        figures = await _build(owner, n, workdir)
        rng = random.Random(1)
        held = _held_queries(n)
        figures |= await _latency(querier, owner, held, lookups, rng)
        figures |= await _bulk(querier, owner, held, bulk, rng)
        figures |= await _owner_cpu(fed, querier, owner, owner_requests, workdir)
    finally:
        await fed.close()
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


def _bulk_size(text: str) -> int:
    value = positive(text)
    if value > MAX_SERIALS:
        raise argparse.ArgumentTypeError(f"one lookup checks at most {MAX_SERIALS} serials")
    return value


def _owner_requests(text: str) -> int:
    value = positive(text)
    limit = int(RateLimitConfig().capacity) - WARMUP  # the real owner's default burst
    if value > limit:
        raise argparse.ArgumentTypeError(f"the owner's default rate limit takes at most {limit}")
    return value


def main() -> None:
    """Parse the options, run the benchmark in a temporary directory, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=positive, default=1_000_000)
    parser.add_argument("--lookups", type=positive, default=300)
    parser.add_argument("--bulk", type=_bulk_size, default=MAX_SERIALS)
    parser.add_argument("--owner-requests", type=_owner_requests, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iarms-bench-") as tmp:
        figures = asyncio.run(
            bench(args.records, args.lookups, args.bulk, args.owner_requests, Path(tmp))
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
