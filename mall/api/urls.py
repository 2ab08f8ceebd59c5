from django.urls import path

from mall.api import organization, partner, views

urlpatterns = [
    path("me/mall/items/", views.MeItemListView.as_view(), name="me-mall-items"),
    path("me/mall/items/<int:item_id>/", views.MeItemDetailView.as_view(), name="me-mall-item"),
    path("me/mall/orders/", views.MeOrderListView.as_view(), name="me-mall-orders"),
    path("me/mall/orders/<int:order_id>/", views.MeOrderDetailView.as_view(), name="me-mall-order"),
    path("me/mall/orders/<int:order_id>/cancel/", views.MeOrderCancelView.as_view(), name="me-mall-order-cancel"),
    path("me/coupons/", views.MeCouponListView.as_view(), name="me-coupons"),
    path("me/organization/orders/", organization.OrganizationOrderListView.as_view(), name="me-organization-orders"),
    path("me/organization/orders/<int:order_id>/", organization.OrganizationOrderDetailView.as_view(),
         name="me-organization-order"),
    path("me/organization/orders/<int:order_id>/cancel/", organization.OrganizationOrderCancelView.as_view(),
         name="me-organization-order-cancel"),
    path("coupons/<str:code>/", partner.CouponDetailView.as_view(), name="coupon-detail"),
    path("coupons/<str:code>/redeem/", partner.CouponRedeemView.as_view(), name="coupon-redeem"),
    path("coupons/<str:code>/undo/", partner.CouponUndoView.as_view(), name="coupon-undo"),
    path("mall/items/", partner.PartnerItemListView.as_view(), name="mall-items"),
    path("mall/items/<int:item_id>/", partner.PartnerItemDetailView.as_view(), name="mall-item"),
    path("mall/orders/", partner.PartnerOrderListView.as_view(), name="mall-orders"),
    path("mall/write-offs/", partner.PartnerWriteOffListView.as_view(), name="mall-write-offs"),
]
