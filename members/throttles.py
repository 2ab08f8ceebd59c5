"""Throttles of the API that count per member rather than per client address."""

from rest_framework.throttling import ScopedRateThrottle

from members.principals import MemberPrincipal


class MemberScopedRateThrottle(ScopedRateThrottle):
    """The view's `throttle_scope` rate (DEFAULT_THROTTLE_RATES), counted per signed-in member
    (their id), so that one member cannot draw codes without end from many addresses. Other
    callers are not throttled here. Over the rate: 429 `throttled` with Retry-After."""

    def get_cache_key(self, request, view):
        if not isinstance(request.user, MemberPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"member-{request.user.member.pk}"}
