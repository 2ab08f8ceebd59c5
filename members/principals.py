"""Who is calling the API: a partner system (API key) or a member (bearer token)."""

from dataclasses import dataclass

from members.models import BusinessUnit, Member, Merchant, PartnerKey


@dataclass(frozen=True)
class PartnerPrincipal:
    key: PartnerKey
    business_unit: BusinessUnit
    merchant: Merchant | None
    is_authenticated: bool = True

    @property
    def idempotency_scope(self) -> str:
        """Idempotency keys are unique per partner key and its rotation chain: the chain's first
        key's unique 8-character prefix names it (a primary key embeds the hash and would not fit
        the 64-character scope column), so a successor replays what its predecessor posted."""
        return f"partner:{self.key.idempotency_prefix}"


@dataclass(frozen=True)
class MemberPrincipal:
    member: Member
    is_authenticated: bool = True

    @property
    def idempotency_scope(self) -> str:
        """A member's own writes (distributions, transfers) are keyed per member."""
        return f"member:{self.member.pk}"
