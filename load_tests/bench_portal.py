"""The portal on 100,000 recordings: latency of the recordings list and of searches, against baselines.

A scratch embedded PostgreSQL gets the migrated catalogue, one tenant, and 100,000 of its recordings in one
``INSERT … SELECT generate_series`` (about 43 days of calls: Hungarian landline and mobile numbers, names,
both directions, a few failed and one-way calls; one regular caller with ~200 calls, one surname on ~1 %).
Then, through the real app the server runs (the API with the portal mounted), over httpx's ASGI transport
with a logged-in session, it measures p50/p95 of:

- ``list``: ``GET /recordings`` (first page, HTML, 50 rows);
- ``list deep``: the same with the cursor of the 90,000th recording (the keyset page costs the same);
- ``number``: ``GET /recordings?q=06 1 234 5678`` (the regular caller, written the Hungarian way);
- ``participant``: ``GET /recordings?q=<surname>`` (a substring of the parties' names, trigram index);

and, in the same run, the baselines: a ``SELECT 1`` round trip on the pool, and each query through
:func:`storage.recording_search.search` directly (no HTTP, no session check, no rendering), so the figures
say what the page adds over the query itself.

    .venv/bin/python -m load_tests.bench_portal --recordings 100000 --repeat 200
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from argon2 import PasswordHasher

from siprec_server.api import build_api, make_services
from siprec_server.portal import mount_portal
from storage import EmbeddedDatabase, FileBlobStore, migrate, open_pool
from storage.audit import Actor
from storage.passwords import Passwords
from storage.principal import Role
from storage.recording_search import RecordingQuery, encode_cursor, search

OPERATOR = Actor(name="cli:bench", origin="cli")
PASSWORD = "Correct horse battery staple"
REGULAR = "+3612345678"  # the caller with ~200 calls; searched as 06 1 234 5678
SURNAME = "Lengyel"  # on about 1 % of the calls

# 100,000 calls, newest first every 37 s back from now. Numbers: Budapest landlines (+361 + 7 digits) and
# mobiles (+3620/30/70 + 7 digits) spread by multiplicative hashing; every 500th call is the regular caller's.
_SEED = r"""
WITH params AS (
    SELECT '0123456789ABCDEFGHJKMNPQRSTVWXYZ'::text AS b32,
           ARRAY['Kovács','Szabó','Tóth','Nagy','Horváth','Varga','Kiss','Molnár','Németh','Farkas',
                 'Balogh','Papp','Takács','Juhász','Mészáros','Oláh','Simon','Rácz','Fekete','Szilágyi']
               AS surnames,
           ARRAY['Anna','Éva','Katalin','Zsófia','Eszter','Péter','László','Gábor','Zoltán','Bence',
                 'Dániel','Márton','Judit','Réka','Ádám','Gergő','Noémi','Csaba','Tamás','Ilona'] AS given,
           ARRAY['+3620','+3630','+3670','+361'] AS prefixes
), calls AS (
    SELECT n,
           now() - n * interval '37 seconds' AS started,
           CASE WHEN n % 500 = 0 THEN $4
                ELSE '+361' || lpad(((n * 7919) % 10000000)::text, 7, '0') END AS caller,
           (SELECT prefixes[(1 + n % 4)::int] FROM params)
               || lpad(((n * 104729) % 10000000)::text, 7, '0') AS callee,
           CASE WHEN n % 97 = 0 THEN $5 ELSE (SELECT surnames[(1 + (n * 7) % 20)::int] FROM params) END
               || ' ' || (SELECT given[(1 + (n * 13) % 20)::int] FROM params) AS caller_name,
           (SELECT surnames[(1 + (n * 11) % 20)::int] FROM params) || ' '
               || (SELECT given[(1 + (n * 3) % 20)::int] FROM params) AS callee_name,
           20 + (n * 7877) % 880 AS seconds
    FROM generate_series(1::bigint, $1::bigint) AS n
)
INSERT INTO recordings (id, reference, call_id, status, started_at, media_started_at, ended_at,
                        duration_seconds, participants, streams, channels, sample_rate, format, tenant_id,
                        basis, purpose, retention_class_id, expires_at, numbers, call_facts)
SELECT gen_random_uuid(),
       'HT-' || (SELECT string_agg(substr(b32, ((n >> (5 * i)) & 31)::int + 1, 1), '' ORDER BY i)
                 FROM params, generate_series(0, 3) AS i)
             || '-' || (SELECT string_agg(substr(b32, ((n >> (5 * i)) & 31)::int + 1, 1), '' ORDER BY i)
                 FROM params, generate_series(4, 7) AS i),
       n || '-bench@pbx.example.hu',
       CASE WHEN n % 211 = 0 THEN 'failed' WHEN n % 53 = 0 THEN 'one_way' ELSE 'complete' END,
       started, started + interval '180 milliseconds', started + seconds * interval '1 second', seconds,
       jsonb_build_array(
           jsonb_build_object('aor', 'sip:' || caller || '@pbx.example.hu', 'name', caller_name, 'role', 'caller'),
           jsonb_build_object('aor', 'sip:' || callee || '@pbx.example.hu', 'name', callee_name, 'role', 'callee')),
       '[]'::jsonb, 2, 8000, 'flac', $2::uuid,
       'legitimate_interest', 'quality assurance', $3::bigint, started + interval '60 days',
       ARRAY[caller, callee],
       jsonb_build_object('direction', jsonb_build_object(
           'value', CASE WHEN n % 3 = 0 THEN 'outbound' ELSE 'inbound' END))
FROM calls
"""


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return p50 * 1000, p95 * 1000


async def timed(action: Callable[[], Awaitable[Any]], repeat: int, warmup: int = 10) -> list[float]:
    for _ in range(warmup):
        await action()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - start)
    return samples


async def seed(pool: Any, tenant_id: Any, count: int) -> float:
    class_id = await pool.fetchval(
        "SELECT id FROM retention_classes WHERE tenant_id IS NULL AND code = 'quality_60d'"
    )
    start = time.perf_counter()
    await pool.execute(_SEED, count, tenant_id, class_id, REGULAR, SURNAME)
    await pool.execute("ANALYZE recordings")
    return time.perf_counter() - start


async def log_in(client: httpx.AsyncClient, email: str) -> None:
    form = await client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    done = await client.post(
        "/login", data={"email": email, "password": PASSWORD, "login_token": token.group(1)}
    )
    assert done.status_code == 303 and done.headers["location"] == "/recordings", done.text


async def run(dsn: str, work: Path, count: int, repeat: int) -> None:
    pool = await open_pool(dsn, max_size=4)
    try:
        await migrate(pool)
        passwords = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        services = make_services(
            pool, blobs=FileBlobStore(work / "recordings"), bundle_dir=work / "bundles", passwords=passwords
        )
        tenant = await services.tenants.create(slug="bench", name="Bench Kft.", actor=OPERATOR)
        await services.tenants.add_number(tenant.id, REGULAR, actor=OPERATOR)
        user, one_time = await services.users.create(tenant.id, "anna@bench.example", Role.VIEWER, OPERATOR)
        await services.users.change_password(tenant.id, user.id, one_time, PASSWORD, OPERATOR)
        seconds = await seed(pool, tenant.id, count)
        print(f"seeded {count:,} recordings in {seconds:.1f} s")

        deep_row = await pool.fetchrow(
            "SELECT started_at, id FROM recordings WHERE tenant_id = $1 "
            "ORDER BY started_at DESC, id DESC OFFSET $2 LIMIT 1",
            tenant.id,
            int(count * 0.9),
        )
        deep = encode_cursor(deep_row["started_at"], deep_row["id"])
        app = mount_portal(build_api(services), services)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="https://bench.test") as client:
            await log_in(client, "anna@bench.example")

            def page(params: dict[str, str]) -> Callable[[], Awaitable[Any]]:
                async def get() -> None:
                    response = await client.get("/recordings", params=params)
                    assert response.status_code == 200 and 'class="ref"' in response.text, response.text[:500]

                return get

            def raw(query: RecordingQuery, cursor: str | None = None) -> Callable[[], Awaitable[Any]]:
                async def run_search() -> None:
                    found = await search(pool, tenant.id, query, cursor=cursor, limit=50)
                    assert found.items

                return run_search

            async def select_1() -> None:
                await pool.fetchval("SELECT 1")

            cases = [
                ("list", page({}), raw(RecordingQuery())),
                ("list deep (90 %)", page({"cursor": deep}), raw(RecordingQuery(), deep)),
                (
                    "number 06 1 234 5678",
                    page({"q": "06 1 234 5678"}),
                    raw(RecordingQuery(number="06 1 234 5678")),
                ),
                (f"participant {SURNAME}", page({"q": SURNAME}), raw(RecordingQuery(participant=SURNAME))),
            ]
            baseline = percentiles(await timed(select_1, repeat))
            hits = len((await search(pool, tenant.id, RecordingQuery(number=REGULAR), limit=200)).items)
            print(f"the regular caller has {hits} calls (first 200 counted); {repeat} requests per figure\n")
            print(f"{'':24} {'page p50':>9} {'p95':>7}   {'search() p50':>12} {'p95':>7}   (ms)")
            print(f"{'SELECT 1 round trip':24} {'':>9} {'':>7}   {baseline[0]:12.2f} {baseline[1]:7.2f}")
            for name, through_page, direct in cases:
                page_p = percentiles(await timed(through_page, repeat))
                raw_p = percentiles(await timed(direct, repeat))
                print(f"{name:24} {page_p[0]:9.2f} {page_p[1]:7.2f}   {raw_p[0]:12.2f} {raw_p[1]:7.2f}")
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200, help="requests per figure")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hangtar-bench-portal-"))
    database = EmbeddedDatabase(work / "data", durable=False)
    try:
        dsn = database.start()
        try:
            asyncio.run(run(dsn, work, args.recordings, args.repeat))
        finally:
            database.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
