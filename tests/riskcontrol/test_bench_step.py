"""The risk benchmark step's pure parts and its rule switch (the load itself runs in `make bench`)."""

import pytest

from bench.steps import risk
from riskcontrol.models import RiskRule
from riskcontrol.selectors import risk_config


def figures(none_rps, rules_rps):
    return {"req_per_s": none_rps, "p99_ms": 12.5}, {"req_per_s": rules_rps, "p99_ms": 14.0}


def test_compare_gives_the_ratio_and_the_added_cost_per_path():
    earn_none, earn_rules = figures(400.0, 360.0)
    redeem_none, redeem_rules = figures(500.0, 400.0)
    phases = {"none": {"earn": earn_none, "redeem": redeem_none}, "rules": {"earn": earn_rules, "redeem": redeem_rules}}
    compared = risk.compare(phases)
    assert (compared["earn"]["ratio"], compared["earn"]["added_cost"], compared["earn"]["within_goal"]) == (0.9, 0.1, True)
    assert (compared["redeem"]["ratio"], compared["redeem"]["within_goal"]) == (0.8, False)
    lines = risk.markdown({"connections": 8, "rules": ["a"], "comparison": compared, "raw_tps": {"earn": 900.0}})
    assert any(line.startswith("| earn | 400.0 |") and "10.0%" in line and "| yes |" in line for line in lines)
    assert any(line.startswith("| redeem |") and "| no |" in line for line in lines)


def test_raw_tps_is_the_ceiling_at_the_step_concurrency():
    raw = {"earn": [{"clients": 1, "tps": 100.0}, {"clients": risk.CONNECTIONS, "tps": 700.0}]}
    assert risk.raw_tps(raw, "earn") == 700.0
    assert risk.raw_tps(raw, "redeem") is None


@pytest.mark.django_db
def test_the_rules_switch_on_three_per_path_and_off_again():
    risk.rules_switch(on=True)
    config = risk_config()
    assert len(config.earn_rules) + len(config.fingerprint_rules) == 3 and len(config.spend_rules) == 3
    risk.rules_switch(on=False)
    assert not RiskRule.objects.filter(is_active=True).exists()
    assert RiskRule.objects.count() == len(risk.RULES)
    config = risk_config()
    assert not (config.earn_rules or config.fingerprint_rules or config.spend_rules)


def test_the_rounds_of_a_phase_count_together():
    def round_(phase, earn_requests, p99):
        figures = {"requests": earn_requests, "seconds": 5.0, "p99_ms": p99, "statuses": {"201": earn_requests}}
        return {"phase": phase, "earn": figures, "redeem": {**figures, "statuses": {"201": 1, "409": 1}}}

    phases = risk.merged([round_("none", 500, 10.0), round_("rules", 400, 12.0), round_("none", 300, 30.0),
                          round_("rules", 400, 11.0)])
    assert (phases["none"]["earn"]["req_per_s"], phases["none"]["earn"]["p99_ms"]) == (80.0, 30.0)
    assert phases["rules"]["earn"]["statuses"] == {"201": 800}
    assert phases["rules"]["redeem"]["statuses"] == {"201": 2, "409": 2}
    assert risk.compare(phases)["earn"]["ratio"] == 1.0
