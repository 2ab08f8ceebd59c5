"""Admin building blocks shared by every app's operator console.

They live in members, the lowest app, so that points, tiers and the apps above can use them
without breaking the layers (members <- points <- tiers, riskcontrol, mall, settlement).
"""


class ReadOnlyAdminMixin:
    """No add, change or delete from the console, for anyone, superusers included.

    For rows written only by services: the ledger (append-only; a correction is a new posting),
    member tokens, tier changes, lot expiry moves. The signatures take `obj` so that the mixin
    serves model admins and inlines alike.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
