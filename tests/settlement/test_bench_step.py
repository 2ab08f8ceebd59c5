"""The settlement benchmark step: importable, its section rendered from figures."""

from bench.steps import settlement


def test_the_section_shows_every_figure():
    figures = {"period": "2031-01", "backfill_seconds": 0.7, "backfilled_lines": 30, "compute_seconds": 1.5, "lines": 12, "export_seconds": 0.4, "export_rows": 900,
               "export_bytes": 1, "peak_rss_mb": 80.0, "verify_seconds": 0.2, "verified": True, "target_seconds": 60}
    text = "\n".join(settlement.markdown(figures))
    assert settlement.NAME == "settlement" and "2031-01" in text and "| 1.5 | 12 lines | 80.0 |" in text
    assert "| 0.7 | 30 lines |" in text
