"""Load a benchmark-scale ledger fast: members, wallets, postings, entries, lots, lot movements.

Each member's history is simulated in Python (earns at several business units and merchants
spread over two years, spends that consume lots in the ledger's order: earliest expiry, then
earliest earning) and streamed into PostgreSQL with COPY, one transaction per chunk of members.
The result satisfies every ledger invariant: `verify_ledger` passes on it.

The expiry job is taken never to have run, so lots that expired before now are still open:
they are the due lots the expiry benchmark sweeps. The first `--hot-members` members get one
extra large lot, so that redemption benchmarks racing on a few wallets do not run dry.

When the connection is a superuser's, each chunk is loaded with `session_replication_role =
replica`, which skips triggers and foreign-key checks (the deferred balance trigger would
otherwise run once per entry); `verify_ledger` checks everything they check. With
`--rebuild-indexes` the secondary indexes of the loaded tables are dropped first and rebuilt
once at the end. Prints a JSON summary on stdout; progress goes to stderr. It refuses a ledger
already partitioned by month (`partition_ledger`, which a benchmark runs after it).
"""

import json
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from members.models import BusinessUnit, BusinessUnitKind, Merchant, MerchantCategory
from points.partitioning import ledger_partitioned
from points.timeutils import expiry_after_months

DAY = 86_400
SPAN_DAYS = 730
IMPORT_SCOPE = "import"

# (code, name, kind, earn rate, pending days, expiry months, merchant categories)
BUSINESS_UNITS = [
    ("bench-mall", "Bench Central Mall", BusinessUnitKind.MALL, Decimal("1"), 0, 12,
     [MerchantCategory.RETAIL, MerchantCategory.FOOD, MerchantCategory.ELECTRONICS, MerchantCategory.PARKING]),
    ("bench-park", "Bench Office Park", BusinessUnitKind.OFFICE_PARK, Decimal("1"), 0, 12,
     [MerchantCategory.FOOD, MerchantCategory.SERVICE, MerchantCategory.PARKING]),
    ("bench-hotel", "Bench Harbour Hotel", BusinessUnitKind.HOTEL, Decimal("2"), 7, 24,
     [MerchantCategory.HOSPITALITY, MerchantCategory.FOOD]),
    ("bench-tour", "Bench Lake Resort", BusinessUnitKind.TOURISM, Decimal("0.5"), 0, 12,
     [MerchantCategory.ENTERTAINMENT, MerchantCategory.FOOD]),
]
BU_WEIGHTS = [55, 15, 15, 15]

TABLE_COLUMNS = {
    "members_member": [
        "id", "phone", "card_no", "name", "birthday", "email", "status", "consent_marketing", "consent_sms",
        "consent_data_sharing", "referral_code", "enrolled_at", "enrolled_business_unit_id", "referred_by_id",
        "organization_id",
    ],
    "points_wallet": ["id", "balance", "debt", "is_frozen", "frozen_reason", "updated_at", "member_id"],
    "points_posting": [
        "id", "kind", "event_type", "points", "amount_cny", "receipt_no", "reason", "explanation", "idempotency_scope",
        "idempotency_key", "request_hash", "occurred_at", "created_at", "actor_id", "business_unit_id",
        "merchant_id", "reverses_id", "wallet_id",
    ],
    "points_entry": ["id", "account", "amount", "business_unit_id", "posting_id", "wallet_id"],
    "points_lot": [
        "id", "rule_code", "amount", "remaining", "earned_at", "available_at", "expires_at", "business_unit_id",
        "merchant_id", "posting_id", "wallet_id",
    ],
    "points_lotmovement": ["id", "amount", "lot_id", "posting_id"],
}


@dataclass
class Unit:
    id: int
    rate: Decimal
    rate_micro: int  # earn rate x 10^6, so points = cents * rate_micro // 10^8 in integers
    pending: int
    months: int
    merchants: list[int]


class Timestamps:
    """Cached UTC and expiry timestamp strings: formatting is most of the generator's time."""

    def __init__(self):
        self._days: dict[int, str] = {}
        self._expiry: dict[tuple[int, int], str] = {}

    def utc(self, t: int) -> str:
        day, secs = divmod(t, DAY)
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%d")
        return f"{text} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}+00"

    def expiry(self, t: int, months: int) -> tuple[int, str]:
        """`expiry_after_months` for an epoch second, cached per quarter hour (every zone offset
        is a multiple of 15 minutes, so a quarter hour never straddles a local midnight)."""
        key = (t // 900, months)
        found = self._expiry.get(key)
        if found is None:
            moment = expiry_after_months(datetime.fromtimestamp(t, UTC), months)
            found = self._expiry[key] = (int(moment.timestamp()), moment.astimezone(UTC).isoformat())
        return found


def luhn(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


class Generator:
    """Simulates members' histories and renders them as COPY text, keeping every invariant."""

    def __init__(self, *, units: list[Unit], postings_per_member: float, hot_members: int, hot_points: int,
                 now: int, seed: int, ids: dict[str, int]):
        self.units = units
        self.postings_per_member = postings_per_member
        self.hot_members = hot_members
        self.hot_points = hot_points
        self.now = now
        self.random = random.Random(seed)
        self.next_id = dict(ids)
        self.ts = Timestamps()
        self.counts = dict.fromkeys(TABLE_COLUMNS, 0)
        self.first_member_id = ids["members_member"]
        self.first_wallet_id = ids["points_wallet"]

    def _take(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    def chunk(self, members: int) -> dict[str, list[str]]:
        rows = {table: [] for table in TABLE_COLUMNS}
        for _ in range(members):
            self._member(rows)
        for table, lines in rows.items():
            self.counts[table] += len(lines)
        return rows

    def _member(self, rows):
        rnd = self.random
        ts = self.ts
        member_id = self._take("members_member")
        wallet_id = self._take("points_wallet")
        hot = member_id - self.first_member_id < self.hot_members
        enrolled = self.now - rnd.randrange(SPAN_DAYS * DAY)
        home = rnd.choices(self.units, BU_WEIGHTS)[0]
        rows["members_member"].append(
            f"{member_id}\t170{member_id:08d}\t{self._card(member_id)}\tMember {member_id}\t\\N\t\tactive\t"
            f"{'t' if member_id % 3 == 0 else 'f'}\tf\tf\tBN{member_id:08d}\t{ts.utc(enrolled)}\t{home.id}\t\\N\t\\N\n"
        )
        count = rnd.randint(1, max(1, round(2 * self.postings_per_member) - 1))
        times = sorted(rnd.randrange(enrolled, self.now - 60) for _ in range(count))
        # [expires, earned, id, available, remaining, amount, unit, merchant, posting, expires text]:
        # list order is the ledger's consumption order (earliest expiry, then earning, then id).
        lots: list[list] = []
        balance = 0
        for index, t in enumerate(times):
            if index and rnd.random() < 0.2 and (spent := self._spend(rows, wallet_id, t, lots)):
                balance -= spent
            else:
                balance += self._earn(rows, wallet_id, t, lots, rnd.choices(self.units, BU_WEIGHTS)[0])
        if hot:
            balance += self._earn(rows, wallet_id, self.now - 3600, lots, self.units[0], points=self.hot_points)
        for expires, earned, lot_id, available, remaining, amount, unit_id, merchant_id, posting_id, expires_text in lots:
            rows["points_lot"].append(
                f"{lot_id}\t\t{amount}\t{remaining}\t{ts.utc(earned)}\t{ts.utc(available)}\t{expires_text}\t"
                f"{unit_id}\t{merchant_id}\t{posting_id}\t{wallet_id}\n"
            )
        last = times[-1] if times else enrolled
        rows["points_wallet"].append(f"{wallet_id}\t{balance}\t0\tf\t\t{ts.utc(last)}\t{member_id}\n")

    @staticmethod
    def _card(member_id: int) -> str:
        body = f"88{member_id:013d}"
        return body + luhn(body)

    def _posting(self, rows, *, kind, points, t, wallet_id, unit_id, merchant_id="\\N", amount="\\N", receipt="",
                 reason="", explanation="[]", event_type="") -> int:
        posting_id = self._take("points_posting")
        stamp = self.ts.utc(t)
        rows["points_posting"].append(
            f"{posting_id}\t{kind}\t{event_type}\t{points}\t{amount}\t{receipt}\t{reason}\t{explanation}\t{IMPORT_SCOPE}\t"
            f"{posting_id}\t\t{stamp}\t{stamp}\t\\N\t{unit_id}\t{merchant_id}\t\\N\t{wallet_id}\n"
        )
        return posting_id

    def _entry(self, rows, *, account, amount, posting_id, wallet_id="\\N", unit_id="\\N"):
        rows["points_entry"].append(f"{self._take('points_entry')}\t{account}\t{amount}\t{unit_id}\t{posting_id}\t{wallet_id}\n")

    def _earn(self, rows, wallet_id, t, lots, unit: Unit, points: int | None = None) -> int:
        rnd = self.random
        merchant_id = rnd.choice(unit.merchants)
        if points is None:
            cents = rnd.randrange(1_000, 200_000)
            points = cents * unit.rate_micro // 100_000_000
            posting_id = self._posting(
                rows, kind="earn", points=points, t=t, wallet_id=wallet_id, unit_id=unit.id, merchant_id=merchant_id,
                amount=f"{cents // 100}.{cents % 100:02d}", receipt=f"R{t}{wallet_id}", event_type="purchase",
                explanation=json.dumps([{"rule": "base_rate", "rate": str(unit.rate), "points": points}]),
            )
        else:
            posting_id = self._posting(
                rows, kind="earn", points=points, t=t, wallet_id=wallet_id, unit_id=unit.id, merchant_id=merchant_id,
                reason="benchmark float", explanation=json.dumps([{"rule": "fixed", "points": points}]),
            )
        self._entry(rows, account="issuance", amount=-points, posting_id=posting_id, unit_id=unit.id)
        self._entry(rows, account="wallet", amount=points, posting_id=posting_id, wallet_id=wallet_id)
        expires, expires_text = self.ts.expiry(t, unit.months)
        lots.append([expires, t, self._take("points_lot"), t + unit.pending * DAY, points, points, unit.id, merchant_id,
                     posting_id, expires_text])
        return points

    def _spend(self, rows, wallet_id, t, lots) -> int:
        """Spend part of what is available at `t`, earliest expiry first; 0 when nothing is."""
        usable = sorted(lot for lot in lots if lot[4] > 0 and lot[3] <= t <= lot[0])
        available = sum(lot[4] for lot in usable)
        if not available:
            return 0
        points = self.random.randint(1, available)
        unit = self.random.choices(self.units, BU_WEIGHTS)[0]
        posting_id = self._posting(rows, kind="spend", points=-points, t=t, wallet_id=wallet_id, unit_id=unit.id,
                                   reason="redeem")
        left = points
        for lot in usable:
            take = min(lot[4], left)
            lot[4] -= take
            left -= take
            rows["points_lotmovement"].append(f"{self._take('points_lotmovement')}\t{-take}\t{lot[2]}\t{posting_id}\n")
            if not left:
                break
        self._entry(rows, account="wallet", amount=-points, posting_id=posting_id, wallet_id=wallet_id)
        self._entry(rows, account="redemption", amount=points, posting_id=posting_id, unit_id=unit.id)
        return points


class Command(BaseCommand):
    help = "Generate a benchmark-scale ledger with COPY (members, wallets, postings, entries, lots)."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=1000)
        parser.add_argument("--entries", type=int, default=None, help="target ledger entries (default 10 per member)")
        parser.add_argument("--merchants-per-unit", type=int, default=10)
        parser.add_argument("--hot-members", type=int, default=0, help="first members that get an extra large lot")
        parser.add_argument("--hot-points", type=int, default=1_000_000)
        parser.add_argument("--chunk", type=int, default=20_000, help="members per COPY transaction")
        parser.add_argument("--seed", type=int, default=20261122)
        parser.add_argument("--rebuild-indexes", action="store_true",
                            help="drop secondary indexes of the loaded tables first, rebuild them at the end")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, members, entries, merchants_per_unit, hot_members, hot_points, chunk, seed,
               rebuild_indexes, no_progress, **options):
        if members <= 0:
            raise CommandError("--members must be positive")
        if ledger_partitioned():
            raise CommandError("the ledger is partitioned by month: generate before partition_ledger (the generator "
                               "writes ids of the plain sequence)")
        entries = entries or members * 10
        started = time.monotonic()
        self._check_columns()
        units = self._units(merchants_per_unit)
        generator = Generator(
            units=units, postings_per_member=max(1.0, entries / members / 2), hot_members=hot_members,
            hot_points=hot_points, now=int(timezone.now().timestamp()), seed=seed, ids=self._next_ids(),
        )
        dropped = self._drop_indexes() if rebuild_indexes else []
        done = 0
        while done < members:
            size = min(chunk, members - done)
            rows = generator.chunk(size)
            self._copy(rows)
            done += size
            if not no_progress:
                self._progress(done, members, started)
        if not no_progress:
            sys.stderr.write("\n")
        if dropped:
            self._rebuild_indexes(dropped)
        self._finish(generator)
        summary = {
            "members": generator.counts["members_member"],
            "wallets": generator.counts["points_wallet"],
            "postings": generator.counts["points_posting"],
            "entries": generator.counts["points_entry"],
            "lots": generator.counts["points_lot"],
            "lot_movements": generator.counts["points_lotmovement"],
            "first_member_id": generator.first_member_id,
            "last_member_id": generator.next_id["members_member"] - 1,
            "first_wallet_id": generator.first_wallet_id,
            "last_wallet_id": generator.next_id["points_wallet"] - 1,
            "hot_members": min(hot_members, members),
            "business_units": [unit.id for unit in units],
            "merchants": [m for unit in units for m in unit.merchants],
            "seconds": round(time.monotonic() - started, 2),
        }
        self.stdout.write(json.dumps(summary))

    def _check_columns(self):
        """Refuse early, naming the column, when a table gained a required column we do not fill."""
        with connection.cursor() as cursor:
            for table, columns in TABLE_COLUMNS.items():
                cursor.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = %s AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'",
                    [table],
                )
                missing = sorted({name for (name,) in cursor.fetchall()} - set(columns))
                if missing:
                    raise CommandError(f"{table} has required columns the generator does not fill: {missing}")

    def _units(self, merchants_per_unit: int) -> list[Unit]:
        units = []
        for code, name, kind, rate, pending, months, categories in BUSINESS_UNITS:
            unit, _created = BusinessUnit.objects.get_or_create(
                code=code,
                defaults={"name": name, "kind": kind, "earn_rate": rate, "pending_days": pending, "expiry_months": months},
            )
            merchant_ids = []
            for index in range(merchants_per_unit):
                merchant, _created = Merchant.objects.get_or_create(
                    business_unit=unit, code=f"m{index + 1:03d}",
                    defaults={"name": f"{name} shop {index + 1}", "category": categories[index % len(categories)]},
                )
                merchant_ids.append(merchant.pk)
            units.append(Unit(
                id=unit.pk, rate=unit.earn_rate, rate_micro=int(unit.earn_rate * 1_000_000),
                pending=unit.pending_days, months=unit.expiry_months, merchants=merchant_ids,
            ))
        return units

    @staticmethod
    def _next_ids() -> dict[str, int]:
        ids = {}
        with connection.cursor() as cursor:
            for table in TABLE_COLUMNS:
                cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")
                ids[table] = cursor.fetchone()[0]
        return ids

    @staticmethod
    def _copy(rows: dict[str, list[str]]) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('is_superuser') = 'on'")
            bypass = cursor.fetchone()[0]
            if bypass:
                cursor.execute("SET LOCAL session_replication_role = replica")
            for table, lines in rows.items():
                if lines:
                    with cursor.copy(f"COPY {table} ({', '.join(TABLE_COLUMNS[table])}) FROM STDIN") as copy:
                        copy.write("".join(lines))
            if bypass:
                cursor.execute("SET LOCAL session_replication_role = origin")

    @staticmethod
    def _drop_indexes() -> list[str]:
        """Drop the loaded tables' indexes that back no constraint; return their definitions."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() "
                "AND i.tablename = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)",
                [list(TABLE_COLUMNS)],
            )
            found = cursor.fetchall()
            for name, _definition in found:
                cursor.execute(f'DROP INDEX "{name}"')
        return [definition for _name, definition in found]

    @staticmethod
    def _rebuild_indexes(definitions: list[str]) -> None:
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '512MB'")
            for definition in definitions:
                cursor.execute(definition)
            cursor.execute("RESET maintenance_work_mem")
        sys.stderr.write(f"rebuilt {len(definitions)} indexes in {time.monotonic() - started:.1f}s\n")

    @staticmethod
    def _finish(generator: Generator) -> None:
        """Move each id sequence past the rows written and refresh the planner's statistics."""
        with connection.cursor() as cursor:
            for table in TABLE_COLUMNS:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST(%s, (SELECT COALESCE(MAX(id), 1) FROM {table})))",
                    [generator.next_id[table] - 1 or 1],
                )
                cursor.execute(f"ANALYZE {table}")

    @staticmethod
    def _progress(done: int, total: int, started: float) -> None:
        elapsed = time.monotonic() - started
        eta = elapsed / done * (total - done)
        sys.stderr.write(f"\rgenerating: {done:,}/{total:,} members ({100 * done // total}%) {elapsed:.0f}s, ETA {eta:.0f}s   ")
        sys.stderr.flush()
