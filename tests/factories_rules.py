"""Factories for earning rules and expiry policies."""

import factory

from points.models import EarningRule, EventType, ExpiryKind, ExpiryPolicy, RuleEffect


class EarningRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EarningRule

    code = factory.Sequence(lambda n: f"rule-{n}")
    name = factory.LazyAttribute(lambda rule: rule.code.replace("-", " ").title())
    event_type = EventType.PURCHASE
    effect = RuleEffect.FIXED
    points = 10


class ExpiryPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExpiryPolicy

    code = factory.Sequence(lambda n: f"policy-{n}")
    name = factory.LazyAttribute(lambda policy: policy.code)
    kind = ExpiryKind.FIXED_MONTHS
    months = 12
