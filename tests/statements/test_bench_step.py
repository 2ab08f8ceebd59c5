"""The statements benchmark step: its pure figures and its section of BENCHMARKS.md."""

from bench.steps import statements


def figures():
    return {
        "budget_seconds": 120,
        "statements": {
            "period": "2026-11", "members": 240_000, "statements": 231_000, "seconds": 120.0, "finished": False,
            "members_per_s": 2000.0, "projected_all_members_s": 500.0, "peak_rss_mb": 140.2,
            "rss_after_first_batches_mb": 138.9, "idle_django_rss_mb": 90.1, "verify": {"ok": True, "seconds": 300.0},
        },
        "expiry_reminders": {"day": "2026-12-02", "offsets": [30, 7], "messages": 15_000, "seconds": 12.5,
                             "messages_per_s": 1200.0, "peak_rss_mb": 99.0, "finished": True},
    }


def test_rates_and_the_projection_for_every_member():
    assert statements.per_second(240_000, 120.0) == 2000.0
    assert statements.per_second(5, 0) is None
    assert statements.projection_seconds(done=240_000, seconds=120.0, total=1_000_000) == 500.0
    assert statements.projection_seconds(done=0, seconds=3.0, total=1_000_000) is None


def test_the_section_shows_both_jobs_and_whether_they_finished():
    lines = statements.markdown(figures())
    table = [line for line in lines if line.startswith("| statements") or line.startswith("| expiry")]
    assert table[0].startswith("| statements 2026-11 (231,000 written) | 240,000 | 120.0 | 2000.0 | 500.0 | 140.2 | 138.9 | no |")
    assert table[1].endswith("| 99.0 | - | yes |")
    assert "verify_statements over the members reached: OK in 300.0 s." in lines[-1]
    assert (statements.NAME, statements.TITLE) == ("statements", "Statements and expiry reminders")


def test_a_full_scale_run_names_the_members_verify_checked():
    run = figures()
    run["statements"]["verify"]["through_member"] = 100_431
    assert "verify_statements over the members with ids up to 100,431: OK in 300.0 s." in statements.markdown(run)[-1]
    assert statements.GENERATION_BUDGET_SECONDS["full"] * 2500 >= 1_000_000  # every member at 2,500 a second
