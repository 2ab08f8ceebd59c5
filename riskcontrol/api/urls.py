from django.urls import path

from riskcontrol.api.views import MyRiskStatusApi

urlpatterns = [
    path("me/risk-status/", MyRiskStatusApi.as_view(), name="me-risk-status"),
]
