"""The mall console: items through the services (with history), order actions, exports, the
write-off page, and merchant staff kept to their own merchant everywhere."""

import io
import re
from decimal import Decimal

import pytest
from PIL import Image
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from mall.admin import CouponResource, OrderResource, WriteOffResource
from mall.models import Coupon, CouponStatus, Item, ItemKind, MerchantStaff, Order, OrderStatus, WriteOff
from mall.services import coupon_redeem, order_place
from mall.thumbnails import thumbnail_name, thumbnail_url
from points.models import PostingKind, Posting, Wallet
from tests.factories import MerchantFactory, OperatorFactory
from tests.factories import ItemFactory, fund, goods

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english(settings):
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def console(client, operator):
    client.force_login(operator)
    return client


def run_action(client, url, action, objects, **form):
    selected = {"action": action, "_selected_action": [o.pk for o in objects]}
    page = client.post(url, selected)
    assert page.status_code == 200, page.status_code
    token = re.search(r'name="token" value="([0-9a-f]+)"', page.content.decode()).group(1)
    return client.post(url, {**selected, "apply": "1", "token": token, **form}, follow=True)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def export(client, model, resource_class):
    resource = resource_class()
    prefix = resource_class.__name__.lower()
    body = {"format": "0", "resource": "0", **{f"{prefix}_{name}": "on" for name in resource.fields}}
    response = client.post(reverse(f"admin:mall_{model}_export"), body)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv"), response.status_code
    lines = response.content.decode().strip().splitlines()
    return lines[0].split(","), lines[1:]


ITEM_FORM = {
    "kind": "service_voucher", "name_zh": "停车两小时", "name_en": "Two hours of parking", "description_zh": "",
    "description_en": "", "is_active": "on", "price_points": "400", "cash_cny": "0", "settlement_value_cny": "8.00",
    "stock": "50", "delivery": "pickup", "code_source": "generated", "valid_days": "30",
    "slots-TOTAL_FORMS": "0", "slots-INITIAL_FORMS": "0", "slots-MIN_NUM_FORMS": "0", "slots-MAX_NUM_FORMS": "1000",
}


def test_an_item_saved_in_the_console_goes_through_the_service_and_keeps_orders_stock(console, bu, operator):
    response = console.post(reverse("admin:mall_item_add"), {**ITEM_FORM, "business_unit": bu.pk})
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    item = Item.objects.get()
    assert (item.stock, item.history.count(), item.history.first().history_user) == (50, 1, operator)

    change_url = reverse("admin:mall_item_change", args=[item.pk])
    Item.objects.filter(pk=item.pk).update(stock=47)  # three sold while the operator had the page open
    console.post(change_url, {**ITEM_FORM, "business_unit": bu.pk, "price_points": "380"})

    item.refresh_from_db()
    assert (item.price_points, item.stock) == (380, 47)
    console.post(change_url, {**ITEM_FORM, "business_unit": bu.pk, "price_points": "380", "stock_delta": "-7"})
    item.refresh_from_db()
    assert item.stock == 40
    assert item.history.count() == 3
    assert console.get(reverse("admin:mall_item_history", args=[item.pk])).status_code == 200


def test_an_item_image_uploaded_in_the_console_is_stored_and_shown_as_a_thumbnail(console, bu, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    image = io.BytesIO()
    Image.new("RGB", (640, 320), "red").save(image, format="PNG")
    upload = SimpleUploadedFile("cup.png", image.getvalue(), content_type="image/png")

    response = console.post(reverse("admin:mall_item_add"), {**ITEM_FORM, "business_unit": bu.pk, "image": upload})

    assert response.status_code == 302
    item = Item.objects.get()
    assert item.image.name.startswith("mall/items/cup") and (tmp_path / item.image.name).exists()
    thumbnail = tmp_path / thumbnail_name(item.image.name)
    with Image.open(thumbnail) as small:
        assert (small.format, small.size) == ("JPEG", (160, 80))
    listing = console.get(reverse("admin:mall_item_changelist")).content.decode()
    assert thumbnail_url(item.image) in listing and f'src="{item.image.url}"' not in listing


def test_orders_are_fulfilled_cancelled_and_exported_from_the_console(console, member, bu, merchant):
    fund(member, 1000, bu)
    shipped = order_place(member_id=member.pk, item_id=goods(business_unit=bu, merchant=merchant, delivery="shipping").pk,
                          delivery_method="shipping", delivery_address="=HYPERLINK(\"http://x\")",
                          idempotency_key="a").order
    voucher = order_place(member_id=member.pk, item_id=ItemFactory(business_unit=bu, price_points=200).pk,
                          idempotency_key="b").order
    url = reverse("admin:mall_order_changelist")
    assert console.get(url).status_code == 200
    assert console.get(reverse("admin:mall_order_change", args=[shipped.pk])).status_code == 200

    refused = run_action(console, url, "fulfil", [shipped], tracking_no="", reason="")
    assert any("tracking" in m for m in messages_of(refused))
    run_action(console, url, "fulfil", [shipped], tracking_no="SF1001", reason="")
    run_action(console, url, "cancel", [voucher], reason="member asked at the desk")

    shipped.refresh_from_db()
    voucher.refresh_from_db()
    assert (shipped.status, shipped.tracking_no, voucher.status) == (OrderStatus.FULFILLED, "SF1001",
                                                                     OrderStatus.CANCELLED)
    assert voucher.events.last().reason == "member asked at the desk"
    assert Wallet.objects.get(member=member).balance == 1000 - 100

    header, rows = export(console, "order", OrderResource)
    assert header[:3] == ["number", "placed_at", "status"] and len(rows) == 2
    assert "'=HYPERLINK" in next(row for row in rows if row.startswith(shipped.number))

    run_action(console, url, "refund", [shipped], reason="returned unopened")
    shipped.refresh_from_db()
    assert shipped.status == OrderStatus.REFUNDED and Wallet.objects.get(member=member).balance == 1000

    header, rows = export(console, "order", OrderResource)
    assert header[:3] == ["number", "placed_at", "status"] and len(rows) == 2
    assert "'=HYPERLINK" in next(row for row in rows if row.startswith(shipped.number))


def test_the_write_off_page_writes_a_typed_code_off_once(console, member, bu, merchant):
    fund(member, 500, bu)
    order = order_place(member_id=member.pk, item_id=ItemFactory(business_unit=bu, merchant=merchant).pk,
                        idempotency_key="a").order
    code = order.coupons.get().code
    url = reverse("admin:mall_coupon_write_off")
    changelist = console.get(reverse("admin:mall_coupon_changelist")).content.decode()
    assert url in changelist and reverse("admin:mall_coupon_export") in changelist
    page = console.get(url).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)

    for _ in range(2):  # a double submission writes it off once
        response = console.post(url, {"code": code.lower(), "merchant": merchant.pk, "token": token}, follow=True)
    assert Coupon.objects.get().status == CouponStatus.USED and WriteOff.objects.count() == 1
    assert any("written off" in m for m in messages_of(response))


def test_issuing_an_item_at_the_desk_spends_the_members_points_once(console, member, bu, operator):
    fund(member, 500, bu)
    item = ItemFactory(business_unit=bu, price_points=150)
    url = reverse("admin:mall_item_changelist")
    selected = {"action": "issue_to_member", "_selected_action": [item.pk]}
    token = re.search(r'name="token" value="([0-9a-f]+)"', console.post(url, selected).content.decode()).group(1)
    form = {**selected, "apply": "1", "token": token, "member": member.phone, "quantity": "1"}
    console.post(url, form)
    console.post(url, form)

    order = Order.objects.get()
    assert (order.actor, order.points) == (operator, 150)
    assert Wallet.objects.get(member=member).balance == 350


# --- merchant staff --------------------------------------------------------------------------


def staff_of(merchant, username):
    user = OperatorFactory(username=username, is_superuser=False)
    user.groups.add(Group.objects.get(name="merchant staff"))
    MerchantStaff.objects.create(user=user, merchant=merchant)
    return user


@pytest.fixture
def two_shops(bu, member):
    """Two merchants of the mall, each with an item, a fulfilled-pending order, a coupon written off."""
    fund(member, 5000, bu)
    shops = {}
    for code in ("cinema", "noodles"):
        merchant = MerchantFactory(business_unit=bu, code=code)
        item = ItemFactory(business_unit=bu, merchant=merchant, kind=ItemKind.MERCHANT_COUPON, benefit="fixed_value",
                           face_value_cny=Decimal("30"), name_en=f"{code} coupon")
        thing = goods(business_unit=bu, merchant=merchant, name_en=f"{code} mug")
        order = order_place(member_id=member.pk, item_id=item.pk, quantity=2, idempotency_key=f"{code}-c").order
        parcel = order_place(member_id=member.pk, item_id=thing.pk, idempotency_key=f"{code}-g").order
        first = order.coupons.order_by("id").first()
        coupon_redeem(raw_code=first.code, business_unit=bu, merchant=merchant, by="partner:test")
        shops[code] = {"merchant": merchant, "item": item, "order": order, "parcel": parcel, "coupon": first,
                       "open": order.coupons.order_by("id").last(), "write_off": WriteOff.objects.get(coupon=first)}
    return shops


def test_merchant_staff_see_and_act_on_their_merchant_only(client, two_shops, bu):
    mine, theirs = two_shops["cinema"], two_shops["noodles"]
    client.force_login(staff_of(mine["merchant"], "cinema-staff"))

    # lists
    for model, own in (("item", mine["item"]), ("order", mine["order"]), ("coupon", mine["coupon"]),
                       ("writeoff", mine["write_off"])):
        page = client.get(reverse(f"admin:mall_{model}_changelist"))
        assert page.status_code == 200, model
        shown = {obj.pk for obj in page.context["cl"].result_list}
        assert own.pk in shown, model
        other = {"item": theirs["item"], "order": theirs["order"], "coupon": theirs["coupon"],
                 "writeoff": theirs["write_off"]}[model]
        assert other.pk not in shown, model

    # change pages and history, typed by hand
    for model, obj in (("item", theirs["item"]), ("order", theirs["order"]), ("coupon", theirs["coupon"]),
                       ("writeoff", theirs["write_off"])):
        response = client.get(reverse(f"admin:mall_{model}_change", args=[obj.pk]))
        assert response.status_code in (302, 403, 404), model
        assert theirs["merchant"].name not in response.content.decode()
    assert client.get(reverse("admin:mall_item_history", args=[theirs["item"].pk])).status_code in (403, 404)
    assert client.get(reverse("admin:mall_item_change", args=[mine["item"].pk])).status_code == 200
    assert client.post(reverse("admin:mall_item_change", args=[theirs["item"].pk]),
                       {**ITEM_FORM, "business_unit": bu.pk, "price_points": "1"}).status_code in (302, 403, 404)
    assert Item.objects.get(pk=theirs["item"].pk).price_points == 100

    # actions with another merchant's ids slipped in
    url = reverse("admin:mall_order_changelist")
    client.post(url, {"action": "cancel", "_selected_action": [theirs["parcel"].pk], "apply": "1",
                      "token": "a" * 32, "reason": "not mine"})
    client.post(url, {"action": "fulfil", "_selected_action": [theirs["parcel"].pk], "apply": "1",
                      "token": "b" * 32, "tracking_no": "X", "reason": ""})
    assert Order.objects.get(pk=theirs["parcel"].pk).status == OrderStatus.AWAITING_FULFILMENT
    client.post(reverse("admin:mall_coupon_changelist"), {"action": "undo_write_off",
                                                          "_selected_action": [theirs["coupon"].pk]})
    assert Coupon.objects.get(pk=theirs["coupon"].pk).status == CouponStatus.USED

    # the write-off page writes off for their merchant only
    page = client.get(reverse("admin:mall_coupon_write_off")).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)
    refused = client.post(reverse("admin:mall_coupon_write_off"),
                          {"code": theirs["open"].code, "merchant": theirs["merchant"].pk, "token": token}, follow=True)
    assert Coupon.objects.get(pk=theirs["open"].pk).status == CouponStatus.ISSUED
    assert refused.status_code == 200
    client.post(reverse("admin:mall_coupon_write_off"),
                {"code": theirs["open"].code, "merchant": mine["merchant"].pk, "token": token})
    assert Coupon.objects.get(pk=theirs["open"].pk).status == CouponStatus.ISSUED

    # exports
    for model, resource, own, other in (
        ("order", OrderResource, mine["order"].number, theirs["order"].number),
        ("coupon", CouponResource, mine["coupon"].code, theirs["coupon"].code),
        ("writeoff", WriteOffResource, mine["coupon"].code, theirs["coupon"].code),
    ):
        _header, rows = export(client, model, resource)
        text = "\n".join(rows)
        assert own in text and other not in text, model

    # foreign-key choices, and an item added lands at their merchant whatever the form says
    form = client.get(reverse("admin:mall_item_add")).context["adminform"].form
    assert list(form.fields["merchant"].queryset) == [mine["merchant"]]
    client.post(reverse("admin:mall_item_add"), {**ITEM_FORM, "business_unit": bu.pk,
                                                  "merchant": theirs["merchant"].pk, "name_en": "sneaky"})
    assert not Item.objects.filter(name_en="sneaky", merchant=theirs["merchant"]).exists()
    client.post(reverse("admin:mall_item_add"), {**ITEM_FORM, "business_unit": bu.pk,
                                                  "merchant": mine["merchant"].pk, "name_en": "ours"})
    assert Item.objects.get(name_en="ours").merchant == mine["merchant"]

    # staff lists
    staff_page = client.get(reverse("admin:mall_merchantstaff_changelist"))
    assert {s.merchant_id for s in staff_page.context["cl"].result_list} == {mine["merchant"].pk}
    assert Posting.objects.filter(kind=PostingKind.CANCEL).count() == 0
