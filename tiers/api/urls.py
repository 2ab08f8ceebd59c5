from django.urls import path

from tiers.api.views import MemberTierApi, MyTierApi

urlpatterns = [
    path("members/<int:member_id>/tier/", MemberTierApi.as_view(), name="member-tier"),
    path("me/tier/", MyTierApi.as_view(), name="me-tier"),
]
