from django.urls import include, path

from points.api import holds, transfers, views
from points.rules.api import views as rules_views

urlpatterns = [
    path("members/<int:member_id>/balance/", views.MemberBalanceView.as_view(), name="member-balance"),
    path("members/<int:member_id>/transactions/", views.MemberTransactionsView.as_view(), name="member-transactions"),
    path("me/balance/", views.MeBalanceView.as_view(), name="me-balance"),
    path("me/transactions/", views.MeTransactionsView.as_view(), name="me-transactions"),
    path("me/transfers/", transfers.MeTransferView.as_view(), name="me-transfers"),
    path("me/organization/", transfers.MeOrganizationView.as_view(), name="me-organization"),
    path("me/organization/distributions/", transfers.MeDistributionView.as_view(), name="me-organization-distributions"),
    path("transactions/earn/", views.EarnView.as_view(), name="transactions-earn"),
    path("transactions/earn/batch/", views.EarnBatchView.as_view(), name="transactions-earn-batch"),
    path("transactions/spend/", views.SpendView.as_view(), name="transactions-spend"),
    path("transactions/<int:transaction_id>/reverse/", views.ReverseView.as_view(), name="transactions-reverse"),
    path("holds/", holds.HoldListView.as_view(), name="holds"),
    path("holds/<int:hold_id>/", holds.HoldDetailView.as_view(), name="hold-detail"),
    path("holds/<int:hold_id>/capture/", holds.HoldCaptureView.as_view(), name="hold-capture"),
    path("holds/<int:hold_id>/void/", holds.HoldVoidView.as_view(), name="hold-void"),
    path("events/", rules_views.EventView.as_view(), name="events"),
    path("rules/simulate/", rules_views.RuleSimulationView.as_view(), name="rules-simulate"),
    path("", include("points.statements.api")),
]
