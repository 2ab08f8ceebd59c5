"""The example process files kept in the repository (deploy/systemd/*.service, Procfile) run the
project's own commands, and the deployment has exactly one celery beat."""

import configparser
import shlex
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def command(line: str) -> list[str]:
    words = shlex.split(line)
    return [Path(words[0]).name, *words[1:]]


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _sep, rest = line.partition(":")
            entries[name.strip()] = rest.strip()
    return entries


def test_there_is_a_unit_for_the_web_the_worker_and_beat():
    assert {path.stem for path in UNITS} == {"points-web", "points-worker", "points-beat"}


def test_every_unit_runs_a_project_command_with_the_production_settings():
    commands = {}
    for path in UNITS:
        parsed = unit(path)
        service = parsed["Service"]
        assert "DJANGO_SETTINGS_MODULE=config.settings_production" in service.get("Environment", ""), path
        assert service.get("EnvironmentFile") == "/etc/points/env", path
        assert service.get("Restart") == "on-failure", path
        assert parsed["Install"]["WantedBy"] == "multi-user.target", path
        commands[path.stem] = command(service["ExecStart"])
    assert commands["points-web"][:2] == ["gunicorn", "config.wsgi:application"]
    assert commands["points-worker"][:4] == ["celery", "-A", "config", "worker"]
    worker = commands["points-worker"]
    assert worker[worker.index("--queues") + 1].split(",") == [settings.CELERY_TASK_DEFAULT_QUEUE]
    assert commands["points-beat"][:4] == ["celery", "-A", "config", "beat"]
    assert settings.CELERY_BEAT_SCHEDULER in commands["points-beat"]


def test_the_web_unit_checks_the_deployment_before_it_starts():
    pre = command(unit(ROOT / "deploy" / "systemd" / "points-web.service")["Service"]["ExecStartPre"])
    assert pre[1:] == ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]


def test_the_procfile_runs_the_same_processes_and_migrates_on_release():
    entries = procfile()
    assert set(entries) == {"release", "web", "worker", "beat"}
    assert entries["web"].startswith("gunicorn config.wsgi:application")
    assert entries["worker"].startswith("celery -A config worker --queues celery")
    assert "manage.py migrate --noinput" in entries["release"] and "collectstatic --noinput" in entries["release"]


def test_exactly_one_beat_in_each_process_set():
    in_units = [path for path in UNITS if " beat" in unit(path)["Service"]["ExecStart"]]
    in_procfile = [name for name, line in procfile().items() if " beat" in f" {line}"]
    assert len(in_units) == 1 and len(in_procfile) == 1
    worker_lines = [unit(path)["Service"]["ExecStart"] for path in UNITS if path.stem != "points-beat"]
    assert not any("--beat" in line or " -B" in line for line in worker_lines + list(procfile().values()))
