"""The benchmark suite: the platform against the raw PostgreSQL ceiling, in one run.

    .venv/bin/python bench/run.py [--quick] [--port 55433] [--steps raw,http,expiry,mall,...] [--partitioned]

Starts a private PostgreSQL cluster (scripts/ensure-postgres.sh, default durability: fsync and
synchronous_commit on), installs wrk and pgbench when absent, generates a ledger at scale, then
runs each load step bounded in time: the raw ceiling (pgbench scripts doing the ledger's writes
by hand in SQL), the platform served by gunicorn on 127.0.0.1 and loaded by wrk, the expiry job
in a subprocess. With --partitioned, `partition_ledger` partitions the generated ledger by month
first (timed) and every step measures that schema. `verify_ledger` runs after every load step;
a step that leaves the ledger wrong stops the run with a non-zero exit. Every server the run started is stopped at the end. Writes
bench/results/latest.json and the results section of BENCHMARKS.md; a run of chosen steps only
(--steps) writes bench/results/partial.json and prints its section, leaving both alone.
"""

import argparse
import importlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.steps import STEPS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"


@dataclass(frozen=True)
class Scale:
    name: str
    members: int
    entries: int
    step_seconds: int
    expiry_budget_seconds: int
    hot_members: int = 100
    clients: tuple = (1, 8, 32)
    hold_clients: tuple = (8, 32)
    bulk_clients: tuple = (1, 8)
    read_connections: int = 8
    bulk_items: int = 1000
    bulk_max_seconds: int = 120


QUICK = Scale(name="quick", members=20_000, entries=200_000, step_seconds=5, expiry_budget_seconds=20, bulk_items=100,
              bulk_max_seconds=20)
FULL = Scale(name="full", members=1_000_000, entries=10_000_000, step_seconds=20, expiry_budget_seconds=120)


class BenchFailure(RuntimeError):
    """A step went wrong (the ledger is unsound, a tool failed): the run stops, loudly."""


# --- parsing tool output (pure functions, covered by the smoke test) -------------------------


def parse_pgbench(output: str) -> dict:
    """TPS, transactions and aborted clients from pgbench's summary."""
    tps = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", output, re.M)
    done = re.search(r"^number of transactions actually processed: (\d+)", output, re.M)
    failed = re.search(r"^number of failed transactions: (\d+)", output, re.M)
    if tps is None or done is None:
        raise BenchFailure(f"pgbench printed no summary:\n{output[-2000:]}")
    return {
        "tps": float(tps.group(1)),
        "transactions": int(done.group(1)),
        "failed": int(failed.group(1)) if failed else 0,
        "aborted": "aborted" in output,
    }


def latency_percentiles(latencies_ms: list[float]) -> dict:
    if not latencies_ms:
        return {"p50_ms": None, "p99_ms": None}
    ordered = sorted(latencies_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(pick(0.50), 2), "p99_ms": round(pick(0.99), 2)}


def parse_pgbench_logs(paths: list[Path]) -> dict:
    """p50/p99 from pgbench's per-transaction logs (third column: latency in microseconds)."""
    latencies = []
    for path in paths:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                latencies.append(int(parts[2]) / 1000)
    return latency_percentiles(latencies)


def parse_wrk(output: str) -> dict:
    """The JSON line our Lua scripts print in done(): requests, duration, latency, statuses."""
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line[len("BENCH_JSON "):])
            seconds = data["duration_us"] / 1e6
            answered = data["requests"] > 0
            return {
                "requests": data["requests"],
                "seconds": round(seconds, 2),
                "req_per_s": round(data["requests"] / seconds, 1) if seconds else 0.0,
                "p50_ms": round(data["p50_us"] / 1000, 2) if answered else None,
                "p99_ms": round(data["p99_us"] / 1000, 2) if answered else None,
                "statuses": {str(k): v for k, v in data["statuses"].items()},
                "socket_errors": data["socket_errors"],
                "items": data.get("items", {}),
            }
    raise BenchFailure(f"wrk printed no BENCH_JSON line:\n{output[-2000:]}")


def per_second(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if count and seconds else None


CORE_STEPS = ("raw", "http", "expiry")


def chosen_steps(spec: str | None, capability: tuple[str, ...] = STEPS) -> tuple[str, ...]:
    """The steps a run does after generation, in the suite's order: every one by default, else
    those named in `spec` (comma-separated: the core steps raw, http, expiry and the
    capability steps of bench/steps). An unknown name is an error, not a silent skip."""
    known = (*CORE_STEPS, *capability)
    if spec is None:
        return known
    named = {name.strip() for name in spec.split(",") if name.strip()}
    unknown = sorted(named - set(known))
    if unknown or not named:
        raise ValueError(f"unknown steps {unknown or spec!r}; known: {', '.join(known)}")
    return tuple(name for name in known if name in named)


def ratio(numerator, denominator):
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


# --- machine and processes --------------------------------------------------------------------


def run(cmd: list[str], *, env=None, timeout=None, check=True, show_stderr=False) -> subprocess.CompletedProcess:
    """Run a command from the repository root; stdout is captured, stderr too unless shown live."""
    result = subprocess.run(cmd, cwd=ROOT, env=env, timeout=timeout, text=True, stdout=subprocess.PIPE,
                            stderr=None if show_stderr else subprocess.PIPE)
    if check and result.returncode != 0:
        raise BenchFailure(f"{' '.join(cmd)} exited {result.returncode}:\n{(result.stdout or '')[-3000:]}\n"
                           f"{(result.stderr or '')[-3000:]}")
    return result


def log(message: str) -> None:
    sys.stderr.write(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}\n")
    sys.stderr.flush()


def ensure_tools() -> None:
    """wrk and pgbench come from Debian packages; install them when absent (root)."""
    missing = [pkg for tool, pkg in (("wrk", "wrk"), ("pgbench", "postgresql-contrib")) if not shutil.which(tool)
               and not (tool == "pgbench" and pg_bin("pgbench"))]
    if missing:
        log(f"installing {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", *missing], env=env)


def pg_bin(name: str) -> str | None:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: [int(x) for x in re.findall(r"\d+", str(p))])
    return str(found[-1]) if found else shutil.which(name)


def machine() -> dict:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        cpu = model.group(1).strip() if model else platform.processor()
    ram_gb = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total = re.search(r"^MemTotal:\s+(\d+) kB", meminfo.read_text(), re.M)
        ram_gb = round(int(total.group(1)) / 1024 / 1024, 1) if total else None
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": ram_gb, "os": platform.platform()}


def versions(db_url_env: dict) -> dict:
    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    pkgs = run([PYTHON, "-c", "import django, rest_framework, gunicorn, psycopg; print(json.dumps({"
                "'django': django.get_version(), 'djangorestframework': rest_framework.__version__, "
                "'gunicorn': gunicorn.__version__, 'psycopg': psycopg.__version__}))".replace("json.dumps", "__import__('json').dumps")])
    commit = run(["git", "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    return {
        "python": platform.python_version(),
        **json.loads(pkgs.stdout),
        "postgresql": psql(db_url_env, "SHOW server_version"),
        "pgbench": first_line([pg_bin("pgbench") or "pgbench", "--version"]),
        "wrk": first_line(["wrk", "-v"]),
        "commit": commit,
    }


def psql(env: dict, sql: str) -> str:
    return run([pg_bin("psql") or "psql", env["DATABASE_URL"], "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql]).stdout.strip()


def manage(env: dict, *args: str, timeout=None) -> subprocess.CompletedProcess:
    return run([PYTHON, "manage.py", *args], env=env, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Bench:
    scale: Scale
    port: int
    env: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    partner: dict = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="points-bench-")))

    # database -----------------------------------------------------------------------------

    @contextmanager
    def postgres(self):
        """Our own cluster on `port`, stopped afterwards if this run started it."""
        pg_ctl, data_dir = pg_bin("pg_ctl"), f"/tmp/points-pg-{self.port}"
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        was_running = bool(pg_ctl) and Path(data_dir, "PG_VERSION").exists() and subprocess.run(
            [*as_postgres, pg_ctl, "-D", data_dir, "status"], capture_output=True).returncode == 0
        url = run(["scripts/ensure-postgres.sh", str(self.port)]).stdout.strip().splitlines()[-1]
        try:
            yield url
        finally:
            if not was_running:
                log("stopping PostgreSQL")
                subprocess.run([*as_postgres, pg_bin("pg_ctl"), "-D", data_dir, "-m", "fast", "stop"],
                               capture_output=True)

    def prepare_database(self, server_url: str) -> None:
        base = server_url.rsplit("/", 1)[0]
        admin = {"DATABASE_URL": f"{base}/postgres"}
        for statement in ("ALTER SYSTEM SET max_wal_size = '4GB'", "SELECT pg_reload_conf()",
                          "DROP DATABASE IF EXISTS points_bench WITH (FORCE)", "CREATE DATABASE points_bench"):
            psql(admin, statement)
        self.env = {
            **os.environ, "DATABASE_URL": f"{base}/points_bench", "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1",
            "SECRET_KEY": "benchmark-only-secret-key-not-for-production", "LOG_LEVEL": "WARNING",
            "CONN_MAX_AGE": "600", "PYTHONDONTWRITEBYTECODE": "1",
        }
        manage(self.env, "migrate", "-v", "0")
        self.results["postgres_settings"] = {
            name: psql(self.env, f"SHOW {name}")
            for name in ("fsync", "synchronous_commit", "shared_buffers", "max_wal_size", "max_connections")
        }

    def generate(self) -> None:
        log(f"generating {self.scale.members:,} members, ~{self.scale.entries:,} entries")
        started = time.monotonic()
        result = run([PYTHON, "manage.py", "bench_generate", "--members", str(self.scale.members),
                      "--entries", str(self.scale.entries), "--hot-members", str(self.scale.hot_members),
                      "--rebuild-indexes"], env=self.env, show_stderr=True)
        self.data = json.loads(result.stdout.strip().splitlines()[-1])
        psql(self.env, "VACUUM ANALYZE")
        self.results["data"] = {**self.data, "generate_seconds": round(time.monotonic() - started, 1)}
        log(f"generated in {self.results['data']['generate_seconds']}s: {self.data['entries']:,} entries")

    def partition(self) -> None:
        """Partition the generated ledger by month (`partition_ledger`, timed): every later step
        measures the partitioned schema."""
        log("partitioning the ledger by month (partition_ledger)")
        started = time.monotonic()
        done = json.loads(manage(self.env, "partition_ledger").stdout.strip().splitlines()[-1])
        self.results["partitioned"] = {
            "seconds": round(time.monotonic() - started, 1), "command_seconds": done["seconds"], "month": done["month"],
            "partitions": {table: len(names) for table, names in done["partitions"].items()},
            "foreign_keys_validated": len(done["validated"]),
        }
        log(f"partitioned in {self.results['partitioned']['seconds']}s: {done['seconds']}")

    def verify(self, after: str) -> float:
        """verify_ledger; any failure stops the run."""
        started = time.monotonic()
        result = run([PYTHON, "manage.py", "verify_ledger"], env=self.env, check=False)
        seconds = round(time.monotonic() - started, 2)
        self.results.setdefault("verify", []).append({"after": after, "ok": result.returncode == 0, "seconds": seconds})
        if result.returncode != 0:
            raise BenchFailure(f"verify_ledger FAILED after {after}:\n{result.stdout}\n{result.stderr}")
        log(f"verify_ledger OK after {after} ({seconds}s)")
        return seconds

    # raw ceiling ----------------------------------------------------------------------------------

    def pgbench(self, script: str, clients: int, **variables) -> dict:
        logdir = Path(tempfile.mkdtemp(prefix=f"pgbench-{script}-{clients}-", dir=self.workdir))
        defines = [arg for name, value in variables.items() for arg in ("-D", f"{name}={value}")]
        output = run([
            pg_bin("pgbench") or "pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
            "-T", str(self.scale.step_seconds), "-f", str(BENCH / "pgbench" / f"{script}.sql"), "--log",
            f"--log-prefix={logdir}/tx", *defines, self.env["DATABASE_URL"],
        ], timeout=self.scale.step_seconds * 4 + 60, check=False)
        text = output.stdout + output.stderr
        summary = parse_pgbench(text)
        if summary["aborted"] or output.returncode != 0:
            raise BenchFailure(f"pgbench {script} with {clients} clients failed:\n{text[-3000:]}")
        return {"clients": clients, **summary, **parse_pgbench_logs(sorted(logdir.glob("tx*")))}

    def raw_steps(self) -> None:
        data = self.data
        common = {"bu": data["business_units"][0], "merchant": data["merchants"][0]}
        hot = {"hot_first": data["first_wallet_id"], "hot_last": data["first_wallet_id"] + data["hot_members"] - 1,
               "points": 7}
        wallets = {"first_wallet": data["first_wallet_id"], "last_wallet": data["last_wallet_id"],
                   "wallets": data["last_wallet_id"] - data["first_wallet_id"] + 1}
        raw = self.results.setdefault("raw", {})
        for script, variables, clients in (
            ("earn", {**common, **wallets}, self.scale.clients),
            ("redeem", {**common, **hot}, self.scale.clients),
            ("bulk_earn", {**common, **wallets}, self.scale.bulk_clients),
            ("hold_capture", {"bu": common["bu"], **wallets, "points": 7}, self.scale.hold_clients),
        ):
            raw[script] = []
            for count in clients:
                figures = self.pgbench(script, count, **variables)
                if script == "bulk_earn":
                    figures["earns_per_s"] = round(figures["tps"] * 1000, 1)
                raw[script].append(figures)
                log(f"raw {script} x{count}: {figures['tps']:.1f} tps, p99 {figures['p99_ms']} ms")
            self.verify(f"raw {script}")

    # platform over HTTP ------------------------------------------------------------------------

    def helper(self, *args: str) -> dict:
        return json.loads(run([PYTHON, str(BENCH / "helpers.py"), *args], env=self.env).stdout.strip().splitlines()[-1])

    @contextmanager
    def gunicorn(self):
        """The platform as deployed: gunicorn, 2 x cores + 1 sync workers, on 127.0.0.1; stopped after."""
        port = free_port()
        workers = 2 * (os.cpu_count() or 1) + 1
        errlog = self.workdir / "gunicorn.log"
        process = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers",
             str(workers), "--worker-class", "sync", "--timeout", "300", "--error-logfile", str(errlog)],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.results["server"] = {"server": "gunicorn", "workers": workers, "worker_class": "sync"}
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise BenchFailure(f"gunicorn exited {process.returncode}: {errlog.read_text()[-2000:]}")
                try:
                    urllib.request.urlopen(f"{base}/api/schema/", timeout=5).close()
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise BenchFailure("gunicorn did not answer within 60 s") from None
                    time.sleep(0.5)
            yield base
        finally:
            log("stopping gunicorn")
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def get_status(self, url: str) -> int:
        request = urllib.request.Request(url, headers={"Authorization": f"Api-Key {self.partner['api_key']}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def wrk(self, base: str, script: str, connections: int, *, key_prefix: str, members: tuple[int, int],
            extra: str = "", timeout: int = 10, seconds: int | None = None, api_key: str | None = None) -> dict:
        """wrk with a script of bench/wrk; `api_key` is the partner key it sends (the run's own by default)."""
        threads = self.wrk_threads(connections)
        seconds = seconds or self.scale.step_seconds
        output = run([
            "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", f"{timeout}s", "-s", str(BENCH / "wrk" / f"{script}.lua"), base, "--",
            api_key or self.partner.get("api_key", "-"), key_prefix, str(members[0]), str(members[1]), extra,
        ], timeout=seconds * 3 + timeout + 60)
        return {"connections": connections, **parse_wrk(output.stdout)}

    @staticmethod
    def wrk_threads(connections: int) -> int:
        return min(connections, os.cpu_count() or 1)

    def written(self, since: str, key_prefix: str) -> dict:
        """What a load step wrote: postings created since `since` under the step's key prefix."""
        row = psql(self.env, f"""SELECT count(*), COALESCE(SUM(points), 0),
            COALESCE(EXTRACT(EPOCH FROM MAX(created_at) - MIN(created_at)), 0) FROM points_posting
            WHERE created_at >= '{since}' AND idempotency_key LIKE '{key_prefix}%'""").split("|")
        return {"count": int(row[0]), "points": int(row[1]), "span_seconds": float(row[2])}

    def settle(self, since: str, key_prefix: str) -> dict:
        """Wait (bounded) until requests still in flight when wrk stopped are done: the step's
        postings unchanged for two seconds; return what the step wrote."""
        return self.settled(lambda: self.written(since, key_prefix))

    @staticmethod
    def settled(read):
        """Call `read` (what a load step wrote) each second until it answers the same three times
        in a row (bounded): the requests in flight when wrk stopped are done."""
        history = []
        for _ in range(300):
            history.append(read())
            if len(history) >= 3 and history[-1] == history[-2] == history[-3]:
                break
            time.sleep(1)
        return history[-1]

    def written_rows(self, sql: str) -> dict:
        """What a load step wrote, from `sql` answering `count | seconds from the first to the last`,
        once the requests in flight when wrk stopped are done; with its rate per second."""
        def read():
            count, span = psql(self.env, sql).split("|")
            return int(count), float(span)

        count, span = self.settled(read)
        return {"count": count, "span_seconds": span, "per_s": per_second(count, span)}

    def http_steps(self) -> None:
        data, http, notes = self.data, self.results.setdefault("http", {}), self.results.setdefault("http_notes", [])
        members = (data["first_member_id"], data["last_member_id"])
        hot = (data["first_member_id"], data["first_member_id"] + data["hot_members"] - 1)
        run_id = datetime.now(UTC).strftime("%H%M%S")
        self.partner = self.helper("setup")
        with self.gunicorn() as base:
            http["earn"] = []
            for connections in self.scale.clients:
                prefix = f"e{run_id}c{connections}-"
                figures = self.wrk(base, "earn", connections, key_prefix=prefix, members=members)
                self.check_statuses("earn", figures, {"201"})
                http["earn"].append(figures)
                log(f"http earn x{connections}: {figures['req_per_s']} req/s, p50 {figures['p50_ms']} ms, "
                    f"p99 {figures['p99_ms']} ms")
            self.verify("http earn")

            http["redeem"], spent_ok = [], []
            for connections in self.scale.clients:
                prefix, since = f"s{run_id}c{connections}-", datetime.now(UTC).isoformat()
                figures = self.wrk(base, "spend", connections, key_prefix=prefix, members=hot, extra="7")
                self.check_statuses("redeem", figures, {"201", "409"})
                written = self.settle(since, prefix)
                answered = figures["statuses"].get("201", 0) * 7
                in_flight = -written["points"] - answered
                # wrk stops with up to one request per connection still in flight: those may post
                # after wrk has stopped counting, so the ledger may hold at most that much more.
                spent_ok.append({"connections": connections, "spent_in_ledger": -written["points"],
                                 "spent_by_201_responses": answered, "in_flight_at_stop": in_flight // 7,
                                 "ok": 0 <= in_flight <= connections * 7})
                http["redeem"].append(figures)
                log(f"http redeem x{connections}: {figures['req_per_s']} req/s, p99 {figures['p99_ms']} ms, "
                    f"ledger spent {-written['points']} vs 201 x 7 = {answered}")
            self.results["redeem_check"] = spent_ok
            self.verify("http redeem")
            if not all(row["ok"] for row in spent_ok):
                raise BenchFailure(f"points spent in the ledger do not match the successful responses: {spent_ok}")

            http["hold_capture"] = []
            for connections in self.scale.hold_clients:
                prefix, since = f"h{run_id}c{connections}-", datetime.now(UTC).isoformat()
                figures = self.wrk(base, "hold_capture", connections, key_prefix=prefix, members=members, extra="7")
                self.check_statuses("hold then capture", figures, {"201", "409"})
                written = self.settle(since, prefix)
                # Holds captured per second, from the ledger: the capture postings of the step over
                # the time from its first to its last.
                figures["captures_written"] = written["count"]
                figures["captures_per_s"] = (
                    round(written["count"] / written["span_seconds"], 1) if written["span_seconds"] else None
                )
                http["hold_capture"].append(figures)
                log(f"http hold+capture x{connections}: {figures['req_per_s']} req/s, "
                    f"{figures['captures_per_s']} captures/s, p99 {figures['p99_ms']} ms")
            self.verify("http hold then capture")

            connections = self.scale.read_connections
            for name, path in (("balance", "/api/v1/members/%d/balance/"),
                               ("history", "/api/v1/members/%d/transactions/"),
                               ("tier", "/api/v1/members/%d/tier/")):
                status = self.get_status(base + path % members[0])
                if status != 200:
                    notes.append(f"read `{name}` skipped: GET {path % members[0]} answered {status}")
                    log(notes[-1])
                    continue
                figures = self.wrk(base, "read", connections, key_prefix="r", members=members, extra=path)
                self.check_statuses(name, figures, {"200"})
                http[f"read {name}"] = [figures]
                log(f"http read {name} x{connections}: {figures['req_per_s']} req/s, p50 {figures['p50_ms']} ms, "
                    f"p99 {figures['p99_ms']} ms")
            self.verify("http reads")

            http["bulk_earn"] = []
            batch_seconds = self.bulk_probe(base, members, f"b{run_id}probe-")
            duration = min(max(self.scale.step_seconds, math.ceil(3 * batch_seconds)), self.scale.bulk_max_seconds)
            for connections in self.scale.bulk_clients:
                prefix, since = f"b{run_id}c{connections}-", datetime.now(UTC).isoformat()
                figures = self.wrk(base, "bulk_earn", connections, key_prefix=prefix, members=members,
                                   extra=str(self.scale.bulk_items), timeout=300, seconds=duration)
                self.check_statuses("bulk earn", figures, {"200"}, allow_none=True)
                if figures["items"].get("error"):
                    raise BenchFailure(f"bulk earn reported {figures['items']['error']} failed items")
                written = self.settle(since, prefix)
                # Earns/s from the ledger: the step's postings over the time from its first to its
                # last, so that batches still in flight when wrk stopped count too.
                figures["items_per_request"] = self.scale.bulk_items
                figures["earns_written"] = written["count"]
                figures["earns_per_s"] = round(written["count"] / written["span_seconds"], 1) if written["span_seconds"] else None
                http["bulk_earn"].append(figures)
                log(f"http bulk earn x{connections}: {figures['earns_per_s']} earns/s ({written['count']} earns)")
            self.verify("http bulk earn")

    def bulk_probe(self, base: str, members: tuple[int, int], prefix: str) -> float:
        """One batch alone: checks every item is created and times it (it sizes the bulk steps)."""
        items = [{"idempotency_key": f"{prefix}{i}", "member": members[0] + (i * 7919) % (members[1] - members[0] + 1),
                  "amount": "88.00", "merchant": "m001", "receipt_no": f"{prefix}{i}"} for i in range(self.scale.bulk_items)]
        request = urllib.request.Request(
            f"{base}/api/v1/transactions/earn/batch/", data=json.dumps({"items": items}).encode(), method="POST",
            headers={"Authorization": f"Api-Key {self.partner['api_key']}", "Content-Type": "application/json"})
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=600) as response:
            body = json.load(response)
        seconds = round(time.monotonic() - started, 2)
        statuses = [row["status"] for row in body["results"]]
        if statuses.count("created") != len(items):
            raise BenchFailure(f"bulk earn probe: not every item was created: {body['results'][:3]}")
        self.results["bulk_probe"] = {"items": len(items), "seconds": seconds,
                                      "earns_per_s": round(len(items) / seconds, 1)}
        log(f"bulk probe: {len(items)} earns in one request took {seconds}s")
        return seconds

    @staticmethod
    def check_statuses(step: str, figures: dict, expected: set[str], allow_none: bool = False) -> None:
        unexpected = {status: count for status, count in figures["statuses"].items() if status not in expected}
        if unexpected or figures["socket_errors"] or not (figures["requests"] or allow_none):
            raise BenchFailure(f"{step}: unexpected responses {unexpected}, socket errors {figures['socket_errors']}, "
                               f"{figures['requests']} requests")

    # expiry job ---------------------------------------------------------------------------------

    def due_lots(self, now: str) -> int:
        return int(psql(self.env, f"SELECT count(*) FROM points_lot WHERE remaining > 0 AND expires_at < '{now}'"))

    def measure_rss(self, *args: str) -> tuple[dict, float]:
        """Run a helper in a child process; return its JSON and its peak RSS in MB (wait4's rusage)."""
        out = self.workdir / f"helper-{args[0]}.json"
        with out.open("w") as handle:
            process = subprocess.Popen([PYTHON, str(BENCH / "helpers.py"), *args], cwd=ROOT, env=self.env, stdout=handle)
            _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise BenchFailure(f"helper {args[0]} exited {process.returncode}")
        return json.loads(out.read_text().strip().splitlines()[-1]), round(usage.ru_maxrss / 1024, 1)

    def expiry_step(self) -> None:
        now = datetime.now(UTC).isoformat()
        before = self.due_lots(now)
        _idle, idle_rss = self.measure_rss("idle")
        job, peak_rss = self.measure_rss("expire", "--now", now, "--budget", str(self.scale.expiry_budget_seconds))
        after = self.due_lots(now)
        expired = before - after
        self.results["expiry"] = {
            "due_lots_before": before, "lots_expired": expired, "postings": job["postings"], "batches": job["batches"],
            "seconds": job["seconds"], "finished": job["finished"],
            "lots_per_s": round(expired / job["seconds"], 1) if job["seconds"] else None,
            "peak_rss_mb": peak_rss, "idle_django_rss_mb": idle_rss,
        }
        log(f"expiry: {expired} lots in {job['seconds']} s ({self.results['expiry']['lots_per_s']} lots/s), "
            f"peak RSS {peak_rss} MB (idle Django {idle_rss} MB)")
        self.verify("expiry job")

    # the capabilities above the ledger (bench/steps) -----------------------------------------

    def capability_steps(self, names: tuple[str, ...] = STEPS) -> None:
        for name in names:
            step = importlib.import_module(f"bench.steps.{name}")
            log(f"step {step.NAME}")
            self.results.setdefault("steps", {})[step.NAME] = step.run(self)
            self.verify(step.NAME)

    # report --------------------------------------------------------------------------------------

    def write(self, *, partial: bool = False) -> None:
        """The whole suite's results go to latest.json and BENCHMARKS.md; a run of chosen steps
        only to partial.json, its section printed, so that it never replaces a whole run's."""
        out = BENCH / "results" / ("partial.json" if partial else "latest.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        if partial:
            print(render_markdown(self.results))
            log(f"wrote {out.relative_to(ROOT)} (BENCHMARKS.md left as it is)")
            return
        write_markdown(self.results, ROOT / "BENCHMARKS.md")
        log(f"wrote {out.relative_to(ROOT)} and BENCHMARKS.md")


def compute_ratios(results: dict) -> dict:
    """Platform / raw at the same concurrency, for earn, redeem, bulk earn and hold then capture
    (one raw transaction pair = one hold captured), then those each capability step computed
    (its figures' "ratios")."""
    ratios = {}
    raw, http = results.get("raw", {}), results.get("http", {})
    for kind, raw_key, http_key, raw_metric, http_metric in (
        ("earn", "earn", "earn", "tps", "req_per_s"),
        ("redeem", "redeem", "redeem", "tps", "req_per_s"),
        ("bulk_earn", "bulk_earn", "bulk_earn", "earns_per_s", "earns_per_s"),
        ("hold_capture", "hold_capture", "hold_capture", "tps", "captures_per_s"),
    ):
        raw_by_clients = {row["clients"]: row.get(raw_metric) for row in raw.get(raw_key, [])}
        for row in http.get(http_key, []):
            value = ratio(row.get(http_metric), raw_by_clients.get(row["connections"]))
            if value is not None:
                ratios[f"{kind}@{row['connections']}"] = value
    for figures in results.get("steps", {}).values():
        ratios.update(figures.get("ratios", {}))
    return ratios


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio_cell(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _loads(values) -> str:
    return " / ".join(f"{value:.1f}" for value in values) if values else "?"


def render_markdown(results: dict) -> str:
    lines = []
    meta, machine_info, data = results.get("meta", {}), results.get("machine", {}), results.get("data", {})
    lines += [
        f"Run: {meta.get('date', '?')}, scale **{meta.get('scale', '?')}**, {meta.get('step_seconds', '?')} s per load step, "
        f"status **{meta.get('status', '?')}**"
        f"{'; steps ' + ', '.join(meta['steps']) if meta.get('steps') else ''}; "
        f"total {meta.get('total_seconds', '?')} s. Load average (1, 5, 15 min) at the start "
        f"{_loads(meta.get('load_average_at_start'))}, at the end {_loads(meta.get('load_average_at_end'))}: "
        "anything above the core count means other work shared the machine during the run.",
        "",
        f"Machine: {machine_info.get('cpu')}, {machine_info.get('cores')} cores, {machine_info.get('ram_gb')} GB RAM, "
        f"{machine_info.get('os')}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items()) + ".",
        "",
        "PostgreSQL settings: " + ", ".join(f"{k}={v}" for k, v in results.get("postgres_settings", {}).items()) + ".",
        "",
        f"Data: {_cell(data.get('members'))} members, {_cell(data.get('postings'))} postings, "
        f"{_cell(data.get('entries'))} entries, {_cell(data.get('lots'))} lots, {_cell(data.get('lot_movements'))} lot "
        f"movements; generated in {data.get('generate_seconds')} s.",
        "",
    ]
    partitioned = results.get("partitioned")
    if partitioned:
        timings = partitioned.get("command_seconds", {})
        lines += [f"Schema: **partitioned by month** (`partition_ledger` right after generation, {partitioned['seconds']} s "
                  f"in all: conversion {timings.get('convert', '?')} s, foreign keys into postings validated "
                  f"{timings.get('validate_foreign_keys', '?')} s, ANALYZE {timings.get('analyze', '?')} s; "
                  + ", ".join(f"{table} {count} partitions" for table, count in partitioned.get("partitions", {}).items())
                  + "); every step below ran on it.", ""]
    raw = results.get("raw", {})
    if raw:
        lines += ["### Raw ceiling (pgbench, ledger-shaped SQL by hand)", "",
                  "| transaction | clients | TPS | earns/s | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for script, rows in raw.items():
            for row in rows:
                lines.append(f"| {script} | {row['clients']} | {_cell(row['tps'])} | {_cell(row.get('earns_per_s'))} | "
                             f"{_cell(row['p50_ms'])} | {_cell(row['p99_ms'])} |")
        lines.append("")
    http = results.get("http", {})
    if http:
        lines += ["### Platform over HTTP (gunicorn + wrk)", "",
                  "| step | connections | req/s | earns/s | p50 ms | p99 ms | statuses |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for step, rows in http.items():
            for row in rows:
                statuses = ", ".join(f"{k}: {v}" for k, v in sorted(row.get("statuses", {}).items()))
                lines.append(f"| {step} | {row['connections']} | {_cell(row['req_per_s'])} | {_cell(row.get('earns_per_s'))} | "
                             f"{_cell(row['p50_ms'])} | {_cell(row['p99_ms'])} | {statuses} |")
        lines.append("")
        for note in results.get("http_notes", []):
            lines += [f"- {note}"]
        if results.get("http_notes"):
            lines.append("")
    if results.get("redeem_check"):
        lines += ["Redemptions racing on the hot wallets, checked against the ledger afterwards (7 points each; wrk "
                  "stops with one request in flight per connection, which the server still completes):", "",
                  "| connections | points spent in the ledger | 201 responses x 7 | in flight at stop | ok |",
                  "| ---: | ---: | ---: | ---: | --- |"]
        lines += [f"| {row['connections']} | {_cell(row['spent_in_ledger'])} | {_cell(row['spent_by_201_responses'])} | "
                  f"{row['in_flight_at_stop']} | {'yes' if row['ok'] else 'NO'} |" for row in results["redeem_check"]]
        lines.append("")
    if results.get("bulk_probe"):
        probe = results["bulk_probe"]
        lines += [f"Bulk earn probe: one request of {_cell(probe['items'])} earns alone took {probe['seconds']} s "
                  f"({_cell(probe['earns_per_s'])} earns/s), every item created.", ""]
    if results.get("expiry"):
        exp = results["expiry"]
        lines += ["### Expiry job", "",
                  f"{_cell(exp.get('lots_expired'))} of {_cell(exp.get('due_lots_before'))} due lots expired in "
                  f"{exp.get('seconds')} s ({_cell(exp.get('postings'))} postings): **{_cell(exp.get('lots_per_s'))} lots/s**, "
                  f"peak RSS of the worker process {exp.get('peak_rss_mb')} MB (a process that only loads Django: "
                  f"{exp.get('idle_django_rss_mb')} MB)"
                  f"{'' if exp.get('finished') else ' (stopped at its time budget)'}.", ""]
    if results.get("verify"):
        lines += ["### verify_ledger", "",
                  "| after | seconds | result |", "| --- | ---: | --- |"]
        lines += [f"| {v['after']} | {v['seconds']} | {'OK' if v['ok'] else 'FAILED'} |" for v in results["verify"]]
        lines.append("")
    for name in STEPS:
        step = importlib.import_module(f"bench.steps.{name}")
        if step.NAME in results.get("steps", {}):
            lines += [f"### {step.TITLE}", "", *step.markdown(results["steps"][step.NAME]), ""]
    ratios = results.get("ratios", {})
    if ratios:
        lines += ["### Ratios: platform / raw ceiling at the same concurrency", "",
                  "| measure | ratio |", "| --- | ---: |"]
        lines += [f"| {name} | {value:.3f} |" for name, value in ratios.items()]
        lines.append("")
    return "\n".join(lines)


def write_markdown(results: dict, path: Path) -> None:
    """Replace the results section of BENCHMARKS.md, keeping the hand-written analysis around it."""
    section = f"{RESULTS_START}\n{render_markdown(results)}\n{RESULTS_END}"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{RESULTS_START}\n{RESULTS_END}\n"
    if RESULTS_START in text and RESULTS_END in text:
        head, rest = text.split(RESULTS_START, 1)
        tail = rest.split(RESULTS_END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


class Interrupted(BaseException):
    """SIGTERM or SIGINT: unwind, so that every server this run started is stopped."""


def _interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", default=os.environ.get("QUICK") not in (None, "", "0"))
    parser.add_argument("--port", type=int, default=55433, help="port of the benchmark's own PostgreSQL")
    parser.add_argument("--steps", default=None,
                        help="only these steps after generation, comma-separated (default: all): "
                             + ", ".join((*CORE_STEPS, *STEPS)))
    parser.add_argument("--partitioned", action="store_true",
                        help="partition the ledger by month (partition_ledger) after generating it, and measure that")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite the results section of BENCHMARKS.md from bench/results/latest.json")
    args = parser.parse_args(argv)
    if args.report:
        write_markdown(json.loads((BENCH / "results" / "latest.json").read_text()), ROOT / "BENCHMARKS.md")
        return 0
    try:
        steps = chosen_steps(args.steps)
    except ValueError as error:
        parser.error(str(error))
    partial = steps != chosen_steps(None)
    scale = QUICK if args.quick else FULL
    bench = Bench(scale=scale, port=args.port)
    started = time.monotonic()
    bench.results["meta"] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "scale": scale.name,
                             "step_seconds": scale.step_seconds, "load_average_at_start": os.getloadavg(),
                             "status": "complete", "steps": list(steps), "partitioned": args.partitioned}
    bench.results["machine"] = machine()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        ensure_tools()
        with ExitStack() as stack:
            server_url = stack.enter_context(bench.postgres())
            bench.prepare_database(server_url)
            bench.results["versions"] = versions(bench.env)
            bench.generate()
            bench.results["verify_ledger_at_scale_seconds"] = bench.verify("generation")
            if args.partitioned:
                bench.partition()
                bench.verify("partitioning")
            if "raw" in steps:
                bench.raw_steps()
            if "http" in steps:
                bench.http_steps()
            if "expiry" in steps:
                bench.expiry_step()
            bench.capability_steps(tuple(name for name in STEPS if name in steps))
            bench.results["verify_ledger_final_seconds"] = bench.verify("all steps")
    except (BenchFailure, Interrupted) as stop:
        # Whatever was measured is written, marked as such, and the run still fails.
        bench.results["meta"]["status"] = f"{'FAILED' if isinstance(stop, BenchFailure) else 'interrupted'}: {stop}"[:2000]
        raise
    finally:
        bench.results["ratios"] = compute_ratios(bench.results)
        bench.results["meta"]["total_seconds"] = round(time.monotonic() - started, 1)
        bench.results["meta"]["load_average_at_end"] = os.getloadavg()
        bench.write(partial=partial)
    return 0


if __name__ == "__main__":
    # The steps import bench.run: let them find this module, not a second copy of it (whose
    # BenchFailure would be another class).
    sys.modules["bench.run"] = sys.modules[__name__]
    try:
        sys.exit(main())
    except BenchFailure as failure:
        log(f"FAILED: {failure}")
        sys.exit(1)
    except Interrupted as interrupted:
        log(f"interrupted by {interrupted}")
        sys.exit(130)
