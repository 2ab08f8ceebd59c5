"""Operator console of the earning rules: editing with an audit trail, and the simulation page."""

from decimal import Decimal

import pytest
from django.urls import reverse

from members.models import MerchantCategory
from points.models import EarningRule, EventType, Posting, RuleEffect, RuleScope
from tests.factories import MerchantFactory
from tests.factories import EarningRuleFactory

SIMULATE = "admin:points_earningrule_simulate"


@pytest.fixture
def console(client, operator):
    client.force_login(operator)
    return client


def rule_form(**fields):
    """The admin form's fields for a new rule, with the admin's empty defaults."""
    return {
        "code": "electronics-2x", "name": "Electronics 2 per CNY", "description": "", "is_active": "on",
        "event_type": EventType.PURCHASE, "scope": RuleScope.CATEGORY, "bu_kind": "", "merchant_category": "electronics",
        "weekdays": "[]", "tier_codes": "[]", "member_tag": "", "nth_period": "", "effect": RuleEffect.RATE,
        "rate": "2", "priority": "10", "stacking": "stacks", "co_funding_share": "0", **fields,
    }


def test_operator_creates_and_edits_a_rule_with_history(console, operator):
    response = console.post(reverse("admin:points_earningrule_add"), rule_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = EarningRule.objects.get(code="electronics-2x")
    change_url = reverse("admin:points_earningrule_change", args=[rule.pk])
    response = console.post(change_url, rule_form(rate="3"))
    assert response.status_code == 302
    records = list(rule.history.order_by("history_id"))
    assert [(r.history_type, r.rate, r.history_user) for r in records] == [
        ("+", Decimal("2"), operator), ("~", Decimal("3"), operator),
    ]
    history_page = console.get(reverse("admin:points_earningrule_history", args=[rule.pk]))
    assert history_page.status_code == 200


def test_an_incomplete_rule_is_refused_with_the_fields_named(console):
    response = console.post(reverse("admin:points_earningrule_add"), rule_form(rate="", merchant_category=""))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert {"rate", "merchant_category"} <= set(errors)
    assert not EarningRule.objects.exists()


def test_simulation_page_prices_an_event_and_posts_nothing(console, bu, member):
    phones = MerchantFactory(business_unit=bu, code="phones", category=MerchantCategory.ELECTRONICS)
    EarningRuleFactory(code="electronics-2x", scope=RuleScope.CATEGORY, merchant_category="electronics",
                       effect=RuleEffect.RATE, rate=Decimal("2"), points=None)
    EarningRuleFactory(code="weekend", points=50, weekdays=[5, 6])
    changelist = console.get(reverse("admin:points_earningrule_changelist")).content.decode()
    assert reverse(SIMULATE) in changelist

    response = console.post(reverse(SIMULATE), {
        "member": member.phone, "business_unit": bu.pk, "merchant": phones.pk, "event_type": "purchase",
        "amount": "100.00", "occurred_at": "2030-06-01 12:00",  # a Saturday, in the future: operators may ask
    })
    assert response.status_code == 200
    simulation = response.context["simulation"]
    assert simulation.points == 250
    assert [line["rule"] for line in simulation.explanation] == ["electronics-2x", "weekend"]
    assert "250" in response.content.decode()
    assert not Posting.objects.exists()


def test_simulation_form_names_bad_input(console, bu, other_bu, member):
    elsewhere = MerchantFactory(business_unit=other_bu, code="spa")
    response = console.post(reverse(SIMULATE), {
        "member": "nobody", "business_unit": bu.pk, "merchant": elsewhere.pk, "event_type": "purchase",
    })
    errors = response.context["form"].errors
    assert set(errors) == {"member", "merchant", "amount"}
    assert response.context["simulation"] is None


def test_simulation_needs_permission_to_view_rules(client, django_user_model):
    staff = django_user_model.objects.create_user(username="clerk", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse(SIMULATE)).status_code == 403


def test_operations_edit_rules_and_finance_only_reads_them(client, django_user_model):
    from django.contrib.auth.models import Group

    def staff_in(group_name):
        user = django_user_model.objects.create_user(username=group_name.replace(" ", "-"), is_staff=True)
        user.groups.add(Group.objects.get(name=group_name))
        return user

    add_url = reverse("admin:points_earningrule_add")
    client.force_login(staff_in("operations"))
    assert client.get(add_url).status_code == 200
    assert client.get(reverse(SIMULATE)).status_code == 200
    client.force_login(staff_in("finance"))
    assert client.get(add_url).status_code == 403
    assert client.get(reverse(SIMULATE)).status_code == 200


def test_a_period_end_policy_needs_its_period(console):
    response = console.post(reverse("admin:points_expirypolicy_add"), {
        "code": "quarter-end", "name": "Quarter end", "kind": "period_end", "months": "12", "period": "",
        "periods": "0",
    })
    assert response.status_code == 200
    assert "period" in response.context["adminform"].form.errors
    response = console.post(reverse("admin:points_expirypolicy_add"), {
        "code": "quarter-end", "name": "Quarter end", "kind": "period_end", "months": "12", "period": "quarter",
        "periods": "4",
    })
    assert response.status_code == 302
