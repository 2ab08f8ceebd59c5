from django.urls import path

from settlement.api import views

urlpatterns = [
    path("settlement/statements/", views.StatementListView.as_view(), name="settlement-statements"),
]
