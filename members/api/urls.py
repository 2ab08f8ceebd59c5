from django.urls import path

from members.api import views

urlpatterns = [
    path("members/", views.MemberListCreateView.as_view(), name="members"),
    path("me/", views.MeView.as_view(), name="me"),
    path("auth/otp/", views.OtpView.as_view(), name="auth-otp"),
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("auth/token/revoke/", views.TokenRevokeView.as_view(), name="auth-token-revoke"),
]
