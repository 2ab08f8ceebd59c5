from django.urls import path

from mall.api import payments

urlpatterns = [
    path("me/pay-code/", payments.PayCodeView.as_view(), name="me-pay-code"),
    path("me/payments/", payments.MemberPaymentsView.as_view(), name="me-payments"),
    path("me/property-bills/", payments.MemberPropertyBillsView.as_view(), name="me-property-bills"),
    path("payments/", payments.PaymentListView.as_view(), name="payments"),
    path("payments/quote/", payments.PaymentQuoteView.as_view(), name="payments-quote"),
    path("payments/<int:payment_id>/", payments.PaymentDetailView.as_view(), name="payment"),
    path("payments/<int:payment_id>/capture/", payments.PaymentCaptureView.as_view(), name="payment-capture"),
    path("payments/<int:payment_id>/void/", payments.PaymentVoidView.as_view(), name="payment-void"),
    path("payments/<int:payment_id>/refund/", payments.PaymentRefundView.as_view(), name="payment-refund"),
    path("property/bills/", payments.PropertyBillListView.as_view(), name="property-bills"),
    path("property/bills/<str:bill_no>/earn/", payments.PropertyBillEarnView.as_view(), name="property-bill-earn"),
]
