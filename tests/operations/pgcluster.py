"""A PostgreSQL cluster of a test's own: initdb in a temporary folder, on a free loopback port,
started, stopped (also as a crash: an immediate stop) and removed; a streaming replica of it
made with pg_basebackup. As scripts/ensure-postgres.sh does, a root process runs the server as
the `postgres` user. Every wait is bounded."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_SECONDS = 60


def server_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for bindir in reversed(found):
        if (Path(bindir) / "initdb").exists():
            return Path(bindir)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Cluster:
    def __init__(self, bindir: Path, root: Path, port: int):
        self.bindir, self.root, self.port = bindir, root, port
        self.data = root / "data"
        self.log = root / "server.log"

    @classmethod
    def create(cls, bindir: Path, *, prefix: str = "points-pg-") -> "Cluster":
        root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        cluster = cls(bindir, root, free_port())
        cluster._own(root)
        cluster.run("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--locale=C.UTF-8", "--no-sync")
        with open(cluster.data / "postgresql.conf", "a") as conf:
            # A crash test, not a durability test of the disk: the server process dies, the
            # machine does not, so what was written is in the page cache when it restarts.
            conf.write("fsync = off\nfull_page_writes = off\nshared_buffers = 32MB\nmax_connections = 60\n"
                       "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n")
        with open(cluster.data / "pg_hba.conf", "a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        return cluster

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def run(self, program: str, *args: str, timeout: float = START_SECONDS, check: bool = True):
        return subprocess.run(_as_postgres([str(self.bindir / program), *args]), capture_output=True, text=True,
                              timeout=timeout, check=check)

    @property
    def url_base(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def url(self, database: str) -> str:
        return f"{self.url_base}/{database}"

    def start(self) -> None:
        if not self.log.exists():
            self.log.touch()
            self._own(self.log)
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(START_SECONDS),
                 "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "start",
                 timeout=START_SECONDS + 10)

    def crash(self) -> None:
        """An immediate stop: every server process quits at once, no checkpoint; the next start
        recovers from the write-ahead log, as after a crash."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop", check=False)

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop", check=False)

    def is_ready(self) -> bool:
        return subprocess.run([str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                              timeout=10).returncode == 0

    def wait_ready(self, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL on {self.port} not ready after {seconds}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def createdb(self, name: str) -> str:
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def psql(self, database: str, sql: str) -> str:
        return self.run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                        "-tAc", sql).stdout.strip()

    def replica(self) -> "Cluster":
        """A physical streaming replica (hot standby) of this running cluster, started."""
        root = Path(tempfile.mkdtemp(prefix="points-pg-replica-", dir="/tmp"))
        standby = Cluster(self.bindir, root, free_port())
        standby._own(root)
        standby.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-D",
                    str(standby.data), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync", timeout=120)
        standby.start()
        return standby

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def remove(self) -> None:
        self.crash()
        shutil.rmtree(self.root, ignore_errors=True)
