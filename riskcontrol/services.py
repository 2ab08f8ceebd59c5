"""Every write of risk control, and the gates and hooks it registers in points.policies
(riskcontrol.apps). riskcontrol writes no ledger row: it decides in the gates and asks points'
services for what the ledger must do (hold or release an earn's lots, reverse it, freeze).

How a rule takes part in an earn (all inside the earn's transaction, under the wallet lock):

1. `risk_earn_gate` (an earn gate) judges the event before pricing: an earning freeze, the
   blacklist, the member's counts (earns, points, refunds in the window), the amount, the
   device and client address (riskcontrol.context), the receipt and the amount in its minute (a
   unique fingerprint row claimed in the earn's transaction, so two tills racing on one receipt
   find each other); the counts and the claims are one statement (riskcontrol.counters), and a
   block by another rule gives the claims back. A block raises `RiskBlocked` (nothing is posted; the attempt
   is recorded once the transaction has rolled back); a hold or freeze returns a far-future
   date, which lot_terms caps at each lot's expiry: the lots stay pending. Findings wait in
   riskcontrol.context for the posting.
2. `risk_after_earn` (an after-earn hook) opens one case on the posting with every finding,
   and a freeze if asked.

With no rule active, no freeze and no blacklist entry, the gates and hooks read nothing.
Redemptions are judged by `risk_spend_gate` (flag, block, freeze: a redemption cannot be held),
manual adjustments by `risk_adjust_gate` (maker-checker and operator totals), enrolments by
`risk_enrolment_hook` (the blacklist, referral farming).

State machines (cases, freezes, adjustment requests) move forward only: each move is one
conditional UPDATE, or a row locked and its status checked, in the same transaction as its event.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from config.errors import DomainError
from members.models import Member
from points.ledger import OPERATOR_SCOPE, SYSTEM_SCOPE, Idempotency, request_fingerprint, wallet_lock, wallets_lock
from points.models import Lot, Posting, PostingKind
from points.policies import AdjustContext, EarnContext, EarnDone, SpendContext
from points.services import (
    lots_available_locked,
    points_adjust,
    reverse_locked,
    wallet_freeze_locked,
    wallet_unfreeze_locked,
)
from riskcontrol import context
from riskcontrol.counters import EarnCounts, devices_seen, earn_counts, receipts_release, spend_counts
from riskcontrol.exceptions import (
    AdjustmentApprovalRequired,
    ApprovalNotPermitted,
    CaseResolved,
    DuplicateAdjustmentRequest,
    FreezeLifted,
    InvalidRiskInput,
    MakerCannotDecide,
    NotFound,
    OperatorRequired,
    ReasonCodeRequired,
    RequestExpired,
    RequestNotPending,
    ReviewNotPermitted,
    RiskBlocked,
)
from riskcontrol.models import (
    ACTION_SEVERITY,
    AdjustmentRequest,
    AdjustmentRequestEvent,
    AdjustmentThreshold,
    BlacklistAction,
    BlacklistEntry,
    BlockedAttempt,
    CaseOrigin,
    CaseStatus,
    DeviceKind,
    FreezeMode,
    OperatorMember,
    ReasonCode,
    RequestStatus,
    RiskCase,
    RiskCaseEvent,
    RiskFreeze,
    RiskFreezeEvent,
    RiskReceipt,
    RiskRule,
    RuleAction,
    RuleKind,
    block_reference,
)
from riskcontrol.selectors import (
    HELD_ACTIONS,
    SPENDING_MODES,
    RiskConfig,
    RuleSpec,
    blacklist_matches,
    device_members,
    member_has_earning_freeze,
    open_held_postings,
    operator_adjusted,
    referees_on_device,
    referrals_since,
    risk_config,
    risk_configs,
)

logger = logging.getLogger(__name__)

# "Until reviewed": later than any lot's expiry, which caps it (points.rules.lot_terms).
HOLD_UNTIL = datetime(2999, 12, 31, tzinfo=dt_timezone.utc)
REQUEST_KEY_PREFIX = "adjust-request:"
EARN_HISTORY_KINDS = frozenset({RuleKind.EARN_COUNT, RuleKind.EARN_POINTS, RuleKind.REFUND_RATIO})
DEVICE_KINDS = {RuleKind.DEVICE_MEMBERS: DeviceKind.DEVICE, RuleKind.ADDRESS_MEMBERS: DeviceKind.ADDRESS}
REFERRAL_DEVICE_KINDS = {RuleKind.REFERRAL_DEVICE: DeviceKind.DEVICE, RuleKind.REFERRAL_ADDRESS: DeviceKind.ADDRESS}
NO_COUNTS = EarnCounts(history={}, devices={}, others={}, claimed=frozenset())


@dataclass(frozen=True)
class Finding:
    """One reason to act: a rule that fired (or a blacklist entry, or a freeze), its action and
    what it saw."""

    origin: str
    action: str
    rule: RuleSpec | None = None
    evidence: dict = field(default_factory=dict)

    def as_evidence(self) -> dict:
        return {
            "origin": self.origin, "rule": self.rule.code if self.rule else None,
            "kind": self.rule.kind if self.rule else None, "action": self.action, **self.evidence,
        }


def _worst(findings: list[Finding]) -> Finding:
    return max(findings, key=lambda finding: ACTION_SEVERITY[finding.action])


def _changed() -> None:
    """The cached configuration changed (a freeze, an entry): now, and again on commit."""
    risk_configs.changed()


# --- refusals --------------------------------------------------------------------------------


def _refuse(
    *, findings: list[Finding], operation: str, member_id: int | None, business_unit, details: dict | None = None,
    record_now: bool = False,
) -> RiskBlocked:
    """The RiskBlocked to raise, and its record: a blocked attempt (plus the freezes that
    findings ask for), written once the refused transaction has rolled back, or at once when
    `record_now` (no transaction of the caller's to roll back)."""
    primary = _worst(findings)
    reference = block_reference()
    attempt = {
        "reference": reference, "member_id": member_id, "rule_id": primary.rule.id if primary.rule else None,
        "origin": primary.origin, "operation": operation,
        "business_unit_id": business_unit.pk if business_unit is not None else None,
        "device_id": context.device_id(), "client_address": context.client_address(),
        "details": {"findings": [finding.as_evidence() for finding in findings], **(details or {})},
        "created_at": timezone.now(),
    }
    freezes = [finding for finding in findings if finding.action == RuleAction.FREEZE and member_id is not None]

    def record() -> None:
        BlockedAttempt.objects.create(**attempt)
        for finding in freezes:
            freeze_open(
                member_id=member_id, mode=finding.rule.freeze_mode, reason=_("risk control: refused %(reference)s")
                % {"reference": reference}, rule_id=finding.rule.id, ends_at=_freeze_end(finding.rule),
            )

    if record_now:
        record()
    elif not context.defer(record):
        logger.warning("risk control refused %s of member %s (%s), not recorded outside a request: %s",
                       operation, member_id, reference, attempt["details"])
    refused = RiskBlocked(reference=reference)
    refused.record = record
    return refused


def _freeze_end(rule: RuleSpec | None) -> datetime | None:
    return timezone.now() + timedelta(days=rule.freeze_days) if rule and rule.freeze_days else None


# --- earn ------------------------------------------------------------------------------------


def risk_earn_gate(earn: EarnContext) -> datetime | None:
    """The earn gate (see the module docstring): refuses, holds (a far-future date) or lets the
    earn through; its findings wait for the after-earn hook."""
    member = earn.member
    context.findings_put(member.pk, [])
    config = risk_config()
    if config.earn_idle:
        return None
    findings = _earn_findings(earn, config, timezone.now())
    if not findings:
        return None
    if any(finding.action == RuleAction.BLOCK for finding in findings):
        raise _refuse(
            findings=findings, operation="earn", member_id=member.pk, business_unit=earn.business_unit,
            details={"amount_cny": str(earn.amount_cny) if earn.amount_cny is not None else None,
                     "event_type": earn.event_type, "receipt_no": earn.receipt_no},
        )
    context.findings_put(member.pk, findings)
    return HOLD_UNTIL if any(finding.action in HELD_ACTIONS for finding in findings) else None


def _earn_findings(earn: EarnContext, config: RiskConfig, now: datetime) -> list[Finding]:
    """What the earn's rules find. Whatever the rules, one statement of the counters
    (riskcontrol.counters.earn_counts): the devices' rows upserted and locked, every count and the
    receipt claims together."""
    member = earn.member
    if config.earning_freezes and member_has_earning_freeze(member_id=member.pk, now=now):
        return [Finding(origin="freeze", action=RuleAction.BLOCK)]
    findings = []
    if config.blacklist:
        for entry in blacklist_matches(phone=member.phone, card_no=member.card_no, device_id=context.device_id(),
                                       client_address=context.client_address(), now=now):
            findings.append(_blacklist_finding(entry))
    rules = [rule for rule in config.earn_rules if rule.applies(earn.business_unit, earn.merchant)]
    seen = _seen_values(rules, DEVICE_KINDS)
    device_rules = [(rule, DEVICE_KINDS[rule.kind]) for rule in rules if DEVICE_KINDS.get(rule.kind) in seen]
    history_rules = [rule for rule in rules if rule.kind in EARN_HISTORY_KINDS]
    fingerprint_rules = [rule for rule in config.fingerprint_rules if rule.applies(earn.business_unit, earn.merchant)]
    fingerprints = {}
    if not _blocks(findings):
        fingerprints = {
            kind: fingerprint for kind in sorted({rule.kind for rule in fingerprint_rules})
            if (fingerprint := _fingerprint(kind, earn)) is not None
        }
    counts = NO_COUNTS
    if history_rules or seen or fingerprints:
        counts = earn_counts(member_id=member.pk, history_rules=history_rules, seen=seen, device_rules=device_rules,
                             fingerprints=list(fingerprints.values()), now=now)
    for rule in rules:
        evidence = None
        if rule.kind in EARN_HISTORY_KINDS:
            evidence = _judge_history(rule, counts.history[rule.id])
        elif rule.kind == RuleKind.EARN_AMOUNT:
            if earn.amount_cny is not None and earn.amount_cny > rule.threshold:
                evidence = {"amount_cny": str(earn.amount_cny), "threshold": str(rule.threshold)}
        elif rule.id in counts.others:
            kind = DEVICE_KINDS[rule.kind]
            evidence = _judge_device(rule, kind, seen[kind], counts.devices[kind], counts.others[rule.id], member.pk, now)
        if evidence is not None:
            findings.append(Finding(origin=CaseOrigin.RULE, action=rule.action, rule=rule, evidence=evidence))
    if _blocks(findings):
        # Refused by another rule: the receipts are not this earn's (a refusal rolls the single
        # earn back, but the bulk earn goes on with its other items).
        if counts.claimed:
            receipts_release(fingerprints=counts.claimed)
        return findings
    return findings + _fingerprint_findings(earn=earn, rules=fingerprint_rules, fingerprints=fingerprints,
                                            claimed=counts.claimed)


def _blocks(findings: list[Finding]) -> bool:
    return any(finding.action == RuleAction.BLOCK for finding in findings)


def _seen_values(rules: list[RuleSpec], kinds: dict[str, str]) -> dict[str, str]:
    """The request's device and client address (kind -> value) that the rules of `kinds` count."""
    values = {DeviceKind.DEVICE: context.device_id(), DeviceKind.ADDRESS: context.client_address()}
    wanted = {kinds[rule.kind] for rule in rules if rule.kind in kinds}
    return {kind: values[kind] for kind in wanted if values[kind]}


def _blacklist_finding(entry: BlacklistEntry) -> Finding:
    return Finding(
        origin=CaseOrigin.BLACKLIST, action=RuleAction.BLOCK if entry.action == BlacklistAction.BLOCK else RuleAction.HOLD,
        evidence={"blacklist_entry": entry.pk, "blacklisted": entry.kind},
    )


def _judge_history(rule: RuleSpec, counts: dict) -> dict | None:
    if rule.kind == RuleKind.EARN_COUNT and counts["earns"] >= rule.threshold:
        return {"earns_in_window": counts["earns"], "threshold": str(rule.threshold)}
    if rule.kind == RuleKind.EARN_POINTS and counts["points"] >= rule.threshold:
        return {"points_in_window": counts["points"], "threshold": str(rule.threshold)}
    if rule.kind == RuleKind.REFUND_RATIO:
        earned, refunded = counts["points"], counts["refunded"]
        if earned >= (rule.min_points or 1) and Decimal(refunded) / Decimal(earned) > rule.threshold:
            return {"earned_in_window": earned, "refunded_in_window": refunded, "threshold": str(rule.threshold)}
    return None


def _judge_device(rule: RuleSpec, kind: str, value: str, device_pk: int, others: int, member_id: int,
                  now: datetime) -> dict | None:
    """Whether the members on the device (or address) in the rule's window, this one with the
    `others`, are more than the threshold; the evidence names them."""
    if others + 1 <= rule.threshold:
        return None
    seen = [other for other in device_members(device_pk=device_pk, since=rule.since(now)) if other != member_id]
    return {kind: value, "members_in_window": others + 1, "other_members": seen, "threshold": str(rule.threshold)}


def risk_after_earn(*, posting, wallet, tier=None) -> None:
    """The after-earn hook: the gate's findings make one case on the posting."""
    findings = context.findings_take(wallet.member_id)
    if findings:
        _open_case_locked(
            member_id=wallet.member_id, findings=findings, operation="earn", posting=posting,
            business_unit=posting.business_unit, points=posting.points, wallet=wallet,
        )


def risk_after_earn_many(earns: list[EarnDone]) -> None:
    """risk_after_earn for each earn of a set-wise bulk earn."""
    for earn in earns:
        risk_after_earn(posting=earn.posting, wallet=earn.wallet)


def _fingerprint(kind: str, earn: EarnContext) -> str | None:
    where = f"{earn.business_unit.pk}:{earn.merchant.pk if earn.merchant else '-'}"
    if kind == RuleKind.DUPLICATE_RECEIPT:
        return f"receipt:{where}:{earn.receipt_no}" if earn.receipt_no else None
    if earn.amount_cny is None or earn.amount_cny <= 0:
        return None
    return f"amount:{where}:{earn.amount_cny}:{_utc_minute(earn.occurred_at):%Y%m%d%H%M}"


def _utc_minute(at: datetime) -> datetime:
    return at.astimezone(dt_timezone.utc).replace(second=0, microsecond=0)


def _fingerprint_findings(*, earn: EarnContext, rules: list[RuleSpec], fingerprints: dict[str, str],
                          claimed: frozenset[str]) -> list[Finding]:
    """The duplicates among the earn's fingerprints (kind -> fingerprint): those it could not
    claim (riskcontrol.counters.earn_counts) were claimed first by an earn that committed, or by
    this transaction, which the rules of their kind judge if that claim was made since they were
    switched on. The claims are part of the earn's transaction: an earn rolled back leaves its
    receipts unclaimed; an earn that commits (even one that earned nothing) keeps them."""
    findings = []
    for kind, fingerprint in fingerprints.items():
        if fingerprint in claimed:
            continue
        first = RiskReceipt.objects.get(fingerprint=fingerprint)
        fired = [rule for rule in rules if rule.kind == kind and first.created_at >= rule.active_since]
        if not fired:
            continue
        first_earn = _first_earn(kind, earn, first)
        for rule in fired:
            findings.append(Finding(origin=CaseOrigin.RULE, action=rule.action, rule=rule, evidence={
                "fingerprint": fingerprint, "first_earn": first_earn, "first_member": first.member_id,
                "receipt_no": earn.receipt_no,
            }))
    return findings


def _first_earn(kind: str, earn: EarnContext, first: RiskReceipt) -> int | None:
    """The earn that claimed the receipt first (evidence; None when it earned nothing)."""
    postings = Posting.objects.filter(
        kind=PostingKind.EARN, wallet__member_id=first.member_id, business_unit=earn.business_unit,
        merchant=earn.merchant, created_at__gte=first.created_at,
    )
    if kind == RuleKind.DUPLICATE_RECEIPT:
        postings = postings.filter(receipt_no=earn.receipt_no)
    else:
        minute = _utc_minute(earn.occurred_at)
        postings = postings.filter(amount_cny=earn.amount_cny, occurred_at__gte=minute,
                                   occurred_at__lt=minute + timedelta(minutes=1))
    return postings.order_by("id").values_list("pk", flat=True).first()


# --- cases -----------------------------------------------------------------------------------


def _open_case_locked(*, member_id: int, findings: list[Finding], operation: str, posting=None, business_unit=None,
                      points: int = 0, wallet=None) -> RiskCase:
    """Open one case for the findings (the worst decides its action), with its first event; a
    freezing finding freezes the account too. Inside the caller's transaction; `wallet`, when
    given, is locked by the caller."""
    primary = _worst(findings)
    held = posting is not None and primary.action in HELD_ACTIONS
    case = RiskCase.objects.create(
        member_id=member_id, origin=primary.origin, rule_id=primary.rule.id if primary.rule else None,
        operation=operation, action=primary.action, posting=posting, business_unit=business_unit, points=points,
        held_points=posting.points if held else 0, device_id=context.device_id(),
        client_address=context.client_address(),
        evidence={"findings": [finding.as_evidence() for finding in findings]},
    )
    RiskCaseEvent.objects.create(
        case=case, to_status=CaseStatus.OPEN,
        note=_("opened: %(points)s points held for review") % {"points": case.held_points} if held else _("opened: flagged"),
    )
    if primary.action == RuleAction.FREEZE and wallet is not None:
        _freeze_open_locked(
            wallet=wallet, mode=primary.rule.freeze_mode, reason=_("risk case %(case)s") % {"case": case.reference},
            actor=None, rule_id=primary.rule.id, case=case, ends_at=_freeze_end(primary.rule),
        )
    return case


def _check_reviewer(actor) -> None:
    if actor is None or not actor.has_perm("riskcontrol.review_riskcase"):
        raise ReviewNotPermitted()


def _required_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise InvalidRiskInput(_("A reason is required."), field="reason")
    return reason.strip()[:200]


def case_approve(*, case_id: int, actor, reason: str) -> RiskCase:
    """Approve a case: the earn's held points become available (after the business unit's own
    pending days, if any are left), and the freezes the case opened are lifted. Exactly once:
    of two decisions racing, the second gets `case_resolved`."""
    case = _decide(case_id=case_id, actor=actor, reason=reason, to_status=CaseStatus.APPROVED)
    for freeze in RiskFreeze.objects.filter(case=case, lifted_at__isnull=True):
        try:
            freeze_lift(freeze_id=freeze.pk, reason=_("case %(case)s approved") % {"case": case.reference}, actor=actor)
        except FreezeLifted:
            pass
    return case


def case_reject(*, case_id: int, actor, reason: str) -> RiskCase:
    """Reject a case: its earn is reversed (a refund posting, under the debt policy). For held
    points, only what is still in the earn's lots is reversed: points that expired while held
    are gone already and are not taken twice, and a refund already made is not repeated."""
    return _decide(case_id=case_id, actor=actor, reason=reason, to_status=CaseStatus.REJECTED)


def _decide(*, case_id: int, actor, reason: str, to_status: str) -> RiskCase:
    _check_reviewer(actor)
    reason = _required_reason(reason)
    member_id = RiskCase.objects.filter(pk=case_id).values_list("member_id", flat=True).first()
    if member_id is None:
        raise NotFound(f"case {case_id} not found")
    with transaction.atomic(durable=True):
        wallet = wallet_lock(member_id=member_id)
        case = RiskCase.objects.select_for_update(of=("self",)).select_related("posting__business_unit").get(pk=case_id)
        if case.status != CaseStatus.OPEN:
            raise CaseResolved()
        now = timezone.now()
        note, details = "", {}
        if to_status == CaseStatus.APPROVED and case.posting_id and case.action in HELD_ACTIONS:
            earn = case.posting
            release_at = max(now, earn.occurred_at + timedelta(days=earn.business_unit.pending_days))
            moved = lots_available_locked(wallet=wallet, posting_id=earn.pk, at=release_at)
            details["released_lots"] = [
                {"lot": lot_id, "from": before.isoformat(), "to": after.isoformat()} for lot_id, before, after in moved
            ]
            note = _("held points released")
        elif to_status == CaseStatus.REJECTED and case.posting_id:
            reversal = _reverse_case_earn(case=case, wallet=wallet, actor=actor, reason=reason)
            details["reversal"] = reversal.pk if reversal else None
            note = (_("earn reversed: %(points)s points") % {"points": -reversal.points} if reversal
                    else _("nothing left to reverse"))
        moved_case = RiskCase.objects.filter(pk=case.pk, status=CaseStatus.OPEN).update(
            status=to_status, decided_at=now, decided_by=actor, decision_reason=reason,
        )
        assert moved_case == 1, "the case row is locked and was seen open"
        RiskCaseEvent.objects.create(
            case=case, from_status=CaseStatus.OPEN, to_status=to_status, note=note, reason=reason, details=details,
            actor=actor,
        )
        case.status, case.decided_at, case.decided_by, case.decision_reason = to_status, now, actor, reason
    return case


def _reverse_case_earn(*, case: RiskCase, wallet, actor, reason: str) -> Posting | None:
    earn = case.posting
    reversed_already = -(earn.reversals.aggregate(total=Sum("points"))["total"] or 0)
    amount = earn.points - reversed_already
    if case.action in HELD_ACTIONS:
        in_lots = Lot.objects.filter(posting=earn).aggregate(total=Sum("remaining"))["total"] or 0
        amount = min(amount, in_lots)
    if amount <= 0:
        return None
    return reverse_locked(
        original=earn, wallet=wallet, points=amount,
        reason=(_("risk case %(case)s rejected: %(reason)s") % {"case": case.reference, "reason": reason})[:200],
        idempotency=Idempotency(scope=SYSTEM_SCOPE, key=f"risk-reject:{case.pk}"),
        fingerprint=request_fingerprint("risk_reject", case=case.pk), actor=actor,
    )


def cases_decide(*, case_ids: list[int], approve: bool, actor, reason: str) -> list[tuple[int, DomainError | None]]:
    """Approve or reject many cases with one reason, each in its own transaction; the outcome of
    each (None, or the error that kept it from moving)."""
    decide = case_approve if approve else case_reject
    outcomes = []
    for case_id in case_ids:
        try:
            decide(case_id=case_id, actor=actor, reason=reason)
        except DomainError as refused:
            outcomes.append((case_id, refused))
        else:
            outcomes.append((case_id, None))
    return outcomes


# --- redemptions, enrolment ------------------------------------------------------------------


def risk_spend_gate(spend: SpendContext) -> None:
    """The spend gate: judges a spend or a hold (a capture was judged when its hold was placed).
    A flag opens a case and lets it through; a block or freeze refuses it (the freeze is written
    with the record of the refusal)."""
    config = risk_config()
    if not config.spend_rules or spend.operation == "capture":
        return
    rules = [rule for rule in config.spend_rules if rule.applies(spend.business_unit, spend.merchant)]
    if not rules:
        return
    windowed = [rule for rule in rules if rule.kind != RuleKind.REDEMPTION_POINTS]
    history = spend_counts(
        member_id=spend.member.pk, rules=windowed, now=spend.at,
        count_holds=any(rule.kind == RuleKind.REDEMPTION_COUNT for rule in rules),
    )
    findings = []
    for rule in rules:
        evidence = None
        if rule.kind == RuleKind.REDEMPTION_COUNT and history[rule.id]["redemptions"] >= rule.threshold:
            evidence = {"redemptions_in_window": history[rule.id]["redemptions"]}
        elif rule.kind == RuleKind.REDEMPTION_POINTS and spend.points > rule.threshold:
            evidence = {"points": spend.points}
        elif rule.kind == RuleKind.EARN_THEN_REDEEM and min(spend.points, history[rule.id]["earned"]) > rule.threshold:
            evidence = {"points": spend.points, "earned_in_window": history[rule.id]["earned"]}
        if evidence is not None:
            evidence["threshold"] = str(rule.threshold)
            findings.append(Finding(origin=CaseOrigin.RULE, action=rule.action, rule=rule, evidence=evidence))
    if not findings:
        return
    if any(finding.action in (RuleAction.BLOCK, RuleAction.FREEZE) for finding in findings):
        raise _refuse(findings=findings, operation=spend.operation, member_id=spend.member.pk,
                      business_unit=spend.business_unit, details={"points": spend.points})
    _open_case_locked(member_id=spend.member.pk, findings=findings, operation=spend.operation,
                      business_unit=spend.business_unit, points=-spend.points)


def risk_enrolment_hook(member: Member) -> None:
    """Enrolment hook (members.services): a blacklisted phone, device or address refuses the
    enrolment (block) or enrols the member with a case open (hold: their earnings from it are
    held by the earn gate). The referral rules judge a referee's enrolment: under the referrer's
    wallet lock (and the device's row), so referees enrolling at once are counted one after the
    other; a case (or a refusal, or a freeze) is the referrer's."""
    config = risk_config()
    rules = [rule for rule in config.enrol_rules if rule.applies(member.enrolled_business_unit, None)]
    if not member.referred_by_id:
        rules = []
    if not (config.blacklist or rules):
        return
    now = timezone.now()
    findings = []
    if config.blacklist:
        entries = blacklist_matches(phone=member.phone, device_id=context.device_id(),
                                    client_address=context.client_address(), now=now)
        findings = [_blacklist_finding(entry) for entry in entries]
    referrer_wallet = None
    if rules and not any(finding.action == RuleAction.BLOCK for finding in findings):
        referrer_wallet = wallet_lock(member_id=member.referred_by_id)
        findings += _referral_findings(member=member, rules=rules, now=now)
    if not findings:
        return
    referral = any(finding.rule is not None for finding in findings)
    if any(finding.action == RuleAction.BLOCK for finding in findings):
        raise _refuse(findings=findings, operation="enrol", member_id=member.referred_by_id if referral else None,
                      business_unit=member.enrolled_business_unit, details={"phone": member.phone})
    _open_case_locked(member_id=member.referred_by_id if referral else member.pk, findings=findings,
                      operation="enrol", business_unit=member.enrolled_business_unit, wallet=referrer_wallet)


def _referral_findings(*, member: Member, rules: list[RuleSpec], now: datetime) -> list[Finding]:
    referrer_id = member.referred_by_id
    findings = []
    seen = _seen_values(rules, REFERRAL_DEVICE_KINDS)
    devices = devices_seen(seen=seen, member_id=member.pk, now=now) if seen else {}
    for rule in rules:
        since = rule.since(now)
        evidence = None
        if rule.kind == RuleKind.REFERRAL_COUNT:
            referrals = referrals_since(referrer_id=referrer_id, since=since, besides=member.pk) + 1
            if referrals > rule.threshold:
                evidence = {"referrals_in_window": referrals}
        else:
            kind = REFERRAL_DEVICE_KINDS[rule.kind]
            value = seen.get(kind)
            if value:
                others = referees_on_device(device_pk=devices[kind], referrer_id=referrer_id, since=since,
                                            besides=member.pk)
                if len(others) + 1 > rule.threshold:
                    evidence = {kind: value, "referees_in_window": len(others) + 1, "other_referees": others[:20]}
        if evidence is not None:
            evidence.update(referrer=referrer_id, referee=member.pk, threshold=str(rule.threshold))
            findings.append(Finding(origin=CaseOrigin.RULE, action=rule.action, rule=rule, evidence=evidence))
    return findings


# --- manual adjustments ----------------------------------------------------------------------


def risk_adjust_gate(adjust: AdjustContext) -> None:
    """The adjust gate, before the adjustment's transaction: an adjustment above the operator's
    limit, or to their own member account, becomes a request for a second operator
    (`approval_required`); the operator-total rules flag, block or send it for approval. The
    execution of an approved request, and the replay of a posted adjustment, pass."""
    config = risk_config()
    if not (config.maker_checker or config.adjust_rules):
        return
    if _approved_execution(adjust) or _posted_already(adjust):
        return
    if config.maker_checker:
        if adjust.actor is None:
            raise OperatorRequired()
        if _adjust_needs_approval(adjust):
            raise AdjustmentApprovalRequired(request_id=_request_from_adjust(adjust).pk)
    if adjust.actor is None:
        return
    now = timezone.now()
    findings = []
    for rule in config.adjust_rules:
        if not rule.applies(adjust.business_unit, None):
            continue
        total = operator_adjusted(actor_id=adjust.actor.pk, since=rule.since(now)) + abs(adjust.points)
        if total > rule.threshold:
            findings.append(Finding(origin=CaseOrigin.RULE, action=rule.action, rule=rule, evidence={
                "operator": adjust.actor.pk, "adjusted_in_window": total, "threshold": str(rule.threshold),
            }))
    if not findings:
        return
    worst = _worst(findings)
    if worst.action in (RuleAction.BLOCK, RuleAction.FREEZE):
        raise _refuse(findings=findings, operation="adjust", member_id=adjust.member_id,
                      business_unit=adjust.business_unit, details={"points": adjust.points}, record_now=True)
    if worst.action == RuleAction.HOLD:
        raise AdjustmentApprovalRequired(request_id=_request_from_adjust(adjust).pk)
    _open_case_locked(member_id=adjust.member_id, findings=findings, operation="adjust",
                      business_unit=adjust.business_unit, points=adjust.points)


def _approved_execution(adjust: AdjustContext) -> bool:
    key = adjust.idempotency
    if key is None or key.scope != OPERATOR_SCOPE or not key.key.startswith(REQUEST_KEY_PREFIX):
        return False
    request_id = key.key.removeprefix(REQUEST_KEY_PREFIX)
    return request_id.isdigit() and AdjustmentRequest.objects.filter(
        pk=int(request_id), status__in=[RequestStatus.APPROVED, RequestStatus.EXECUTED], member_id=adjust.member_id,
        points=adjust.points, business_unit=adjust.business_unit,
    ).exists()


def _posted_already(adjust: AdjustContext) -> bool:
    key = adjust.idempotency
    return key is not None and bool(key.key) and Posting.objects.filter(
        idempotency_scope=key.scope, idempotency_key=key.key).exists()


def operator_limit(*, actor) -> int | None:
    """The largest adjustment the operator posts alone: the most generous limit of their roles,
    else the limit for any other role; None when neither is set (no limit)."""
    limits = list(AdjustmentThreshold.objects.filter(Q(group__in=actor.groups.all()) | Q(group__isnull=True))
                  .values_list("group_id", "max_points"))
    of_roles = [points for group_id, points in limits if group_id is not None]
    if of_roles:
        return max(of_roles)
    default = [points for group_id, points in limits if group_id is None]
    return default[0] if default else None


def is_own_member_account(*, actor, member_id: int) -> bool:
    if OperatorMember.objects.filter(operator=actor, member_id=member_id).exists():
        return True
    return bool(actor.email) and Member.objects.filter(pk=member_id, email__iexact=actor.email).exists()


def _adjust_needs_approval(adjust: AdjustContext) -> bool:
    if is_own_member_account(actor=adjust.actor, member_id=adjust.member_id):
        return True
    limit = operator_limit(actor=adjust.actor)
    return limit is not None and abs(adjust.points) > limit


def split_reason_code(reason: str) -> tuple[str, str]:
    """("goodwill", "parking gate fault") from "goodwill: parking gate fault"; ("", reason) without a code."""
    code, colon, text = reason.partition(":")
    code = code.strip().lower()
    if colon and code in ReasonCode.values and text.strip():
        return code, text.strip()
    return "", reason.strip()


def _request_from_adjust(adjust: AdjustContext) -> AdjustmentRequest:
    code, text = split_reason_code(adjust.reason)
    return adjustment_request_create(
        member_id=adjust.member_id, points=adjust.points, business_unit=adjust.business_unit, reason_code=code,
        reason=text, maker=adjust.actor,
    )


def adjustment_request_create(*, member_id: int, points: int, business_unit, reason_code: str, reason: str,
                              maker) -> AdjustmentRequest:
    """A manual adjustment waiting for a second operator: reason code and reason required; a
    second pending request for the same member and points is refused; it expires after
    RISK_ADJUSTMENT_REQUEST_DAYS days."""
    if maker is None:
        raise OperatorRequired()
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise InvalidRiskInput(_("Points must be a non-zero whole number."), field="points")
    if reason_code not in ReasonCode.values:
        raise ReasonCodeRequired(codes=list(ReasonCode.values))
    reason = _required_reason(reason)
    if not Member.objects.filter(pk=member_id).exists():
        raise NotFound(f"member {member_id} not found")
    days = getattr(settings, "RISK_ADJUSTMENT_REQUEST_DAYS", 3)
    try:
        with transaction.atomic():
            request = AdjustmentRequest.objects.create(
                member_id=member_id, business_unit=business_unit, points=points, reason_code=reason_code,
                reason=reason, maker=maker, expires_at=timezone.now() + timedelta(days=days),
            )
            AdjustmentRequestEvent.objects.create(request=request, to_status=RequestStatus.PENDING, reason=reason,
                                                  actor=maker)
    except IntegrityError as exc:
        if "adjustment_request_one_pending_per_member_amount" in str(exc):
            raise DuplicateAdjustmentRequest() from exc
        raise
    return request


def _move_request(request: AdjustmentRequest, to_status: str, *, actor, reason: str = "", **fields) -> bool:
    """One move of a request: a conditional write and its event; False when another move won."""
    moved = AdjustmentRequest.objects.filter(pk=request.pk, status=request.status).update(status=to_status, **fields)
    if not moved:
        return False
    AdjustmentRequestEvent.objects.create(request=request, from_status=request.status, to_status=to_status,
                                          reason=reason[:200], actor=actor)
    request.status = to_status
    for name, value in fields.items():
        setattr(request, name, value)
    return True


def _check_checker(request: AdjustmentRequest, checker) -> None:
    if checker is None or not checker.has_perm("riskcontrol.approve_adjustmentrequest"):
        raise ApprovalNotPermitted()
    if checker.pk == request.maker_id:
        raise MakerCannotDecide()


def adjustment_request_approve(*, request_id: int, checker, reason: str = "") -> AdjustmentRequest:
    """A second operator approves: the request moves to approved (never by its maker, whatever
    the path: this service, and a database constraint behind it), then the adjustment is posted
    under the key `adjust-request:<id>` (so at most once) with the maker as its operator."""
    with transaction.atomic(durable=True):
        request = AdjustmentRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None:
            raise NotFound(f"request {request_id} not found")
        _check_checker(request, checker)
        if request.status != RequestStatus.PENDING:
            raise RequestNotPending()
        now = timezone.now()
        expired = request.expires_at <= now
        if expired:
            _move_request(request, RequestStatus.EXPIRED, actor=None, reason="expired", decided_at=now)
        else:
            _move_request(request, RequestStatus.APPROVED, actor=checker, reason=reason, checker=checker,
                          decided_at=now, decision_reason=reason[:200])
    if expired:
        raise RequestExpired()
    return adjustment_request_execute(request_id=request_id)


def adjustment_request_execute(*, request_id: int) -> AdjustmentRequest:
    """Post an approved request's adjustment (again safe: the key replays the posting)."""
    request = AdjustmentRequest.objects.select_related("business_unit", "maker").get(pk=request_id)
    if request.status != RequestStatus.APPROVED:
        return request
    try:
        result = points_adjust(
            member_id=request.member_id, points=request.points, business_unit=request.business_unit,
            reason=f"{request.reason_code}: {request.reason} (#{request.pk})"[:200], actor=request.maker,
            idempotency=Idempotency(scope=OPERATOR_SCOPE, key=f"{REQUEST_KEY_PREFIX}{request.pk}"),
        )
    except DomainError as refused:
        with transaction.atomic():
            _move_request(request, RequestStatus.FAILED, actor=None, reason=str(refused.detail),
                          failure=str(refused.detail)[:200])
        return request
    with transaction.atomic():
        _move_request(request, RequestStatus.EXECUTED, actor=None, reason="posted", posting=result.posting)
    return request


def adjustment_request_reject(*, request_id: int, checker, reason: str) -> AdjustmentRequest:
    reason = _required_reason(reason)
    with transaction.atomic(durable=True):
        request = AdjustmentRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None:
            raise NotFound(f"request {request_id} not found")
        _check_checker(request, checker)
        if request.status != RequestStatus.PENDING:
            raise RequestNotPending()
        _move_request(request, RequestStatus.REJECTED, actor=checker, reason=reason, checker=checker,
                      decided_at=timezone.now(), decision_reason=reason)
    return request


def adjustment_request_withdraw(*, request_id: int, maker, reason: str = "") -> AdjustmentRequest:
    """The maker takes back their own pending request."""
    with transaction.atomic(durable=True):
        request = AdjustmentRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or maker is None or request.maker_id != maker.pk:
            raise NotFound(f"request {request_id} not found")
        if request.status != RequestStatus.PENDING:
            raise RequestNotPending()
        _move_request(request, RequestStatus.WITHDRAWN, actor=maker, reason=reason or "withdrawn",
                      decided_at=timezone.now())
    return request


def adjustment_requests_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Expire the pending requests past their date (the beat job); each a conditional move."""
    now = now or timezone.now()
    expired = 0
    for request in AdjustmentRequest.objects.filter(status=RequestStatus.PENDING, expires_at__lte=now)[:batch_size]:
        with transaction.atomic():
            expired += _move_request(request, RequestStatus.EXPIRED, actor=None, reason="expired", decided_at=now)
    return expired


# --- freezes ---------------------------------------------------------------------------------


def freeze_open(*, member_id: int, mode: str, reason: str, actor=None, ends_at: datetime | None = None,
                rule_id: int | None = None, case: RiskCase | None = None) -> RiskFreeze:
    """Freeze the member's account for earning, spending or both, until lifted or `ends_at`. A
    spending freeze freezes the ledger wallet too (spends, holds and captures refused)."""
    reason = _required_reason(reason)
    if mode not in FreezeMode.values:
        raise InvalidRiskInput(_("Choose earning, spending or both."), field="mode")
    if ends_at is not None and ends_at <= timezone.now():
        raise InvalidRiskInput(_("The end must be in the future."), field="ends_at")
    # Not durable: the console's add form runs its save in a transaction of its own.
    with transaction.atomic():
        wallet = wallet_lock(member_id=member_id)
        return _freeze_open_locked(wallet=wallet, mode=mode, reason=reason, actor=actor, ends_at=ends_at,
                                   rule_id=rule_id, case=case)


def _freeze_open_locked(*, wallet, mode: str, reason: str, actor, ends_at, rule_id, case) -> RiskFreeze:
    froze = mode in SPENDING_MODES and wallet_freeze_locked(wallet=wallet, reason=reason, actor=actor)
    freeze = RiskFreeze.objects.create(
        member_id=wallet.member_id, mode=mode, reason=reason, actor=actor, rule_id=rule_id, case=case,
        froze_wallet=froze, starts_at=timezone.now(), ends_at=ends_at,
    )
    RiskFreezeEvent.objects.create(freeze=freeze, event="frozen", reason=reason, actor=actor)
    _changed()
    return freeze


def freeze_lift(*, freeze_id: int, reason: str, actor=None) -> RiskFreeze:
    """Lift a freeze, once (a second lift gets `freeze_lifted`). Lifting the last spending
    freeze unfreezes the wallet, if a risk freeze froze it (a freeze made by hand in the member
    console stays)."""
    reason = _required_reason(reason)
    member_id = RiskFreeze.objects.filter(pk=freeze_id).values_list("member_id", flat=True).first()
    if member_id is None:
        raise NotFound(f"freeze {freeze_id} not found")
    with transaction.atomic(durable=True):
        wallet = wallet_lock(member_id=member_id)
        now = timezone.now()
        if not RiskFreeze.objects.filter(pk=freeze_id, lifted_at__isnull=True).update(
                lifted_at=now, lifted_by=actor, lift_reason=reason):
            raise FreezeLifted()
        freeze = RiskFreeze.objects.get(pk=freeze_id)
        RiskFreezeEvent.objects.create(freeze=freeze, event="lifted", reason=reason, actor=actor)
        if freeze.mode in SPENDING_MODES and freeze.froze_wallet:
            others = RiskFreeze.objects.filter(member_id=member_id, lifted_at__isnull=True, mode__in=SPENDING_MODES)
            heir = others.order_by("-id").first()
            if heir is not None:
                RiskFreeze.objects.filter(pk=heir.pk).update(froze_wallet=True)
            else:
                wallet_unfreeze_locked(wallet=wallet, reason=reason, actor=actor)
        _changed()
    return freeze


def freezes_lift_due(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Lift the freezes past their end (the beat job); a freeze lifted meanwhile is skipped."""
    now = now or timezone.now()
    lifted = 0
    due = RiskFreeze.objects.filter(lifted_at__isnull=True, ends_at__lte=now).order_by("id")[:batch_size]
    for freeze_id in list(due.values_list("pk", flat=True)):
        try:
            freeze_lift(freeze_id=freeze_id, reason="ended")
        except FreezeLifted:
            continue
        lifted += 1
    return lifted


# --- blacklist -------------------------------------------------------------------------------


def blacklist_add(*, kind: str, value: str, action: str, reason: str, actor=None,
                  expires_at: datetime | None = None) -> BlacklistEntry:
    value = (value or "").strip()
    if not value:
        raise InvalidRiskInput(_("A value is required."), field="value")
    reason = _required_reason(reason)
    try:
        with transaction.atomic():
            entry = BlacklistEntry(kind=kind, value=value, action=action, reason=reason, actor=actor,
                                   expires_at=expires_at)
            entry.save(force_insert=True)
    except IntegrityError as exc:
        raise InvalidRiskInput(_("This value is on the blacklist already."), field="value") from exc
    return entry


def blacklist_remove(*, entry_id: int, actor=None) -> bool:
    """Take an entry off the blacklist (kept, with who and when); False if it was off already."""
    removed = BlacklistEntry.objects.filter(pk=entry_id, removed_at__isnull=True).update(
        removed_at=timezone.now(), removed_by=actor)
    _changed()
    return bool(removed)


# --- rules -----------------------------------------------------------------------------------


def risk_rule_save(*, rule: RiskRule) -> RiskRule:
    """Save a rule (checked: the form's and the database's rules); switching it on starts its
    judging now (`active_since`): what happened before does not count."""
    was_active = rule.pk is not None and RiskRule.objects.filter(pk=rule.pk, is_active=True).exists()
    if rule.is_active and not was_active:
        rule.active_since = timezone.now()
    rule.full_clean()
    rule.save()
    return rule


# --- housekeeping ----------------------------------------------------------------------------


def held_lots_keep(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Keep held points held: a lot whose expiry moved later (activity-extended expiry) would
    otherwise become available at its old expiry, unreviewed. Moves it back to pending (capped at
    its new expiry). Returns the earns whose lots moved."""
    postings = list(
        Lot.objects.filter(posting_id__in=open_held_postings().values("posting_id"), remaining__gt=0)
        .exclude(available_at=F("expires_at")).values_list("posting_id", flat=True).distinct()[:batch_size]
    )
    moved = 0
    for posting_id in postings:
        wallet_id = Posting.objects.filter(pk=posting_id).values_list("wallet_id", flat=True).get()
        with transaction.atomic(durable=True):
            wallet = wallets_lock(wallet_ids=[wallet_id])[0]
            if RiskCase.objects.filter(posting_id=posting_id, status=CaseStatus.OPEN).exists():
                moved += bool(lots_available_locked(wallet=wallet, posting_id=posting_id, at=HOLD_UNTIL))
    return moved


def risk_housekeeping(*, now: datetime | None = None) -> dict[str, int]:
    """The beat job's work: freezes past their end lifted, requests past their date expired,
    held points kept held."""
    now = now or timezone.now()
    return {
        "freezes_lifted": freezes_lift_due(now=now),
        "requests_expired": adjustment_requests_expire(now=now),
        "holds_kept": held_lots_keep(now=now),
    }
