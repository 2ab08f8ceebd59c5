"""The mall over HTTP: the member's catalogue, orders and coupons; the partner's write-off,
catalogue and orders; bad input answered 400 with a code and nothing spent."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from mall import codes
from mall.models import Coupon, CouponStatus, Item, ItemKind, Order, Slot, WriteOff
from points.models import Posting, PostingKind, Wallet
from tests.factories import BusinessUnitFactory, MerchantFactory, enrol_member
from tests.factories import CategoryFactory, ItemFactory, bookable, fund, goods
from tiers.models import TierLevel, TierProgramme

pytestmark = pytest.mark.django_db

ITEMS = "/api/v1/me/mall/items/"
ORDERS = "/api/v1/me/mall/orders/"


def balance(member):
    return Wallet.objects.get(member=member).balance


def order(client, body, key="k1"):
    return client.post(ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.fixture
def shopper(member, bu):
    fund(member, 500, bu)
    return member


@pytest.fixture
def api(member_api, shopper):
    return member_api(shopper)


def test_the_catalogue_is_priced_for_the_member_and_says_why_not(api, bu, merchant):
    programme = TierProgramme.objects.create(code="p", name="P", basis="points")
    TierLevel.objects.create(programme=programme, code="silver", name="Silver", rank=1, threshold=0,
                             redemption_discount_percent=Decimal("10"))
    gold = TierLevel.objects.create(programme=programme, code="gold", name="Gold", rank=2, threshold=10**6)
    cheap = ItemFactory(business_unit=bu, price_points=200, stock=7, limit_total=2, category=CategoryFactory(code="park"))
    dear = ItemFactory(business_unit=bu, merchant=merchant, price_points=1000)
    flash = ItemFactory(business_unit=bu, price_points=100, sale_from=timezone.now() + timedelta(days=1))
    vip = ItemFactory(business_unit=bu, price_points=100, min_tier=gold)
    ItemFactory(business_unit=bu, display_until=timezone.now() - timedelta(days=1))  # no longer shown
    ItemFactory(business_unit=bu, is_active=False)

    response = api.get(ITEMS)

    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()["results"]}
    assert set(rows) == {cheap.pk, dear.pk, flash.pk, vip.pk}
    assert (
        rows[cheap.pk]["member_price"], rows[cheap.pk]["affordable"], rows[cheap.pk]["points_short"],
        rows[cheap.pk]["remaining_stock"], rows[cheap.pk]["remaining_limit"], rows[cheap.pk]["orderable"],
        rows[cheap.pk]["not_orderable"]) == (180, True, 0, 7, 2, True, None)
    assert (rows[dear.pk]["member_price"], rows[dear.pk]["affordable"], rows[dear.pk]["points_short"],
            rows[dear.pk]["orderable"]) == (900, False, 400, False)
    assert rows[flash.pk]["not_orderable"]["code"] == "not_on_sale" and rows[flash.pk]["not_orderable"]["opens_at"]
    assert rows[vip.pk]["not_orderable"]["code"] == "tier_required"

    affordable = api.get(ITEMS, {"affordable": "true", "ordering": "-price"}).json()["results"]
    assert affordable[0]["id"] == cheap.pk and {row["id"] for row in affordable} == {cheap.pk, flash.pk, vip.pk}
    assert [row["id"] for row in api.get(ITEMS, {"category": "park"}).json()["results"]] == [cheap.pk]
    assert {row["id"] for row in api.get(ITEMS, {"min_price": 500}).json()["results"]} == {dear.pk}
    assert api.get(ITEMS, {"kind": "nonsense"}).json()["code"] == "invalid"
    assert api.get(f"{ITEMS}{dear.pk}/").json()["merchant"] == merchant.code


def test_a_bookable_item_lists_its_free_slots(api, bu):
    room = bookable(business_unit=bu, slots=3, capacity=1)
    full = room.slots.order_by("starts_at").first()
    Slot.objects.filter(pk=full.pk).update(booked=1)

    detail = api.get(f"{ITEMS}{room.pk}/").json()

    assert [slot["id"] for slot in detail["free_slots"]] == list(
        room.slots.exclude(pk=full.pk).order_by("starts_at").values_list("id", flat=True))


def test_an_order_over_http_then_its_replay_and_a_conflict(api, shopper, bu):
    item = ItemFactory(business_unit=bu, price_points=150, stock=3)

    created = order(api, {"item": item.pk, "quantity": 2})
    replay = order(api, {"item": item.pk, "quantity": 2})
    conflict = order(api, {"item": item.pk, "quantity": 1})

    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["replayed"], body["order"]["points"], body["order"]["status"]) == (False, 300, "issued")
    assert len(body["order"]["coupons"]) == 2
    assert replay.status_code == 200 and replay.json()["replayed"] and replay.json()["order"]["id"] == body["order"]["id"]
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
    assert balance(shopper) == 200 and Item.objects.get(pk=item.pk).stock == 1
    assert api.get(ORDERS).json()["results"][0]["number"] == body["order"]["number"]
    assert api.get(f"{ORDERS}{body['order']['id']}/").status_code == 200


def test_order_refusals_over_http_have_their_codes(api, shopper, bu, member_api):
    scarce = ItemFactory(business_unit=bu, stock=0)
    dear = ItemFactory(business_unit=bu, price_points=10_000)
    assert order(api, {"item": scarce.pk}, "a").json()["code"] == "out_of_stock"
    chinese = api.post(ORDERS, {"item": scarce.pk}, format="json", HTTP_IDEMPOTENCY_KEY="a", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese.json()["detail"] == "该商品已兑完。"
    refused = order(api, {"item": dear.pk}, "b")
    assert (refused.status_code, refused.json()["code"], refused.json()["available"]) == (409, "insufficient_points", 500)
    assert api.post(ORDERS, {"item": scarce.pk}, format="json").json()["code"] == "idempotency_key_required"
    form = api.post(ORDERS, {"item": scarce.pk}, HTTP_IDEMPOTENCY_KEY="c")  # multipart, not JSON
    assert (form.status_code, form.json()["code"]) == (415, "unsupported_media_type")
    assert balance(shopper) == 500 and not Order.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"item": "ITEM", "quantity": 1}, "item"),
    ({"item": 1.5}, "item"),
    ({"item": True}, "item"),
    ({}, "item"),
    ({"item": "SELF", "quantity": 0}, "quantity"),
    ({"item": "SELF", "quantity": 10**9}, "quantity"),
    ({"item": "SELF", "quantity": "2"}, "quantity"),
    ({"item": "SELF", "quantity": -3}, "quantity"),
    ({"item": 10**6}, "item"),
    ({"item": 2**70}, "item"),
    ({"item": "SELF", "slot": 1}, "slot"),
    ({"item": "ROOM"}, "slot"),
    ({"item": "ROOM", "slot": 10**6}, "slot"),
    ({"item": "ROOM", "slot": "OTHER_SLOT"}, "slot"),
    ({"item": "GOODS", "delivery_method": "shipping", "delivery_address": "<script>alert(1)</script>"}, "delivery_address"),
    ({"item": "GOODS", "delivery_method": "shipping", "delivery_address": "x" * 10_000}, "delivery_address"),
    ({"item": "GOODS", "delivery_method": "shipping", "delivery_address": "line\x00two"}, "delivery_address"),
    ({"item": "GOODS", "delivery_method": "shipping"}, "delivery_address"),
    ({"item": "GOODS", "delivery_method": "drone"}, "delivery_method"),
])
def test_bad_input_is_400_naming_the_field_and_nothing_is_spent_or_reserved(api, shopper, bu, body, field):
    item = ItemFactory(business_unit=bu, stock=5)
    room = bookable(business_unit=bu)
    other = bookable(business_unit=bu)
    stuff = goods(business_unit=bu, delivery="either", stock=5)
    names = {"SELF": item.pk, "ROOM": room.pk, "GOODS": stuff.pk, "OTHER_SLOT": other.slots.get().pk}
    body = {name: names.get(value, value) if isinstance(value, str) else value for name, value in body.items()}

    response = order(api, body)

    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid" and field in response.json()["fields"], response.json()
    assert balance(shopper) == 500 and not Order.objects.exists() and not Coupon.objects.exists()
    assert Item.objects.get(pk=item.pk).stock == 5 and Item.objects.get(pk=stuff.pk).stock == 5
    assert not Slot.objects.filter(booked__gt=0).exists()


def test_sql_in_an_address_is_stored_verbatim(api, shopper, bu):
    stuff = goods(business_unit=bu, delivery="shipping")
    address = "1 O'Brien St'; DROP TABLE mall_order; --"
    response = order(api, {"item": stuff.pk, "delivery_method": "shipping", "delivery_address": address})
    assert response.status_code == 201
    assert Order.objects.get().delivery_address == address


def test_cancel_over_http_returns_the_points_once(api, shopper, bu, member_api):
    item = ItemFactory(business_unit=bu, price_points=100, stock=2)
    placed = order(api, {"item": item.pk}).json()["order"]
    stranger = member_api(enrol_member(name="Stranger"))

    assert stranger.post(f"{ORDERS}{placed['id']}/cancel/", {}, format="json").status_code == 404
    first = api.post(f"{ORDERS}{placed['id']}/cancel/", {"reason": "changed my mind"}, format="json")
    second = api.post(f"{ORDERS}{placed['id']}/cancel/", {}, format="json")

    assert first.status_code == 200 and first.json()["order"]["status"] == "cancelled" and not first.json()["replayed"]
    assert second.status_code == 200 and second.json()["replayed"]
    assert balance(shopper) == 500 and Item.objects.get(pk=item.pk).stock == 2
    assert Posting.objects.filter(kind=PostingKind.CANCEL).count() == 1


def test_my_coupons_carry_the_code_its_qr_payload_and_svg(api, bu):
    item = ItemFactory(business_unit=bu)
    order(api, {"item": item.pk})

    rows = api.get("/api/v1/me/coupons/", {"status": "issued"}).json()["results"]

    assert len(rows) == 1 and rows[0]["qr_payload"] == rows[0]["code"] and codes.is_generated(rows[0]["code"])
    assert rows[0]["qr_svg"].startswith("<svg") and "xmlns" in rows[0]["qr_svg"]
    assert rows[0]["code_display"].replace("-", "") == rows[0]["code"]
    assert api.get("/api/v1/me/coupons/", {"status": "used"}).json()["results"] == []


def test_partner_write_off_look_up_redeem_replay_undo(api, bu, partner_api):
    cinema = MerchantFactory(business_unit=bu, code="cinema")
    item = ItemFactory(business_unit=bu, merchant=cinema, kind=ItemKind.MERCHANT_COUPON, benefit="money_off",
                       face_value_cny=Decimal("50"), min_spend_cny=Decimal("200"))
    order(api, {"item": item.pk})
    code = Coupon.objects.get().code
    till = partner_api(bu, cinema)
    neighbour = partner_api(bu, MerchantFactory(business_unit=bu, code="noodles"))
    hotel = partner_api(BusinessUnitFactory(code="hotel"))

    looked = till.get(f"/api/v1/coupons/{codes.grouped(code).lower()}/").json()
    assert (looked["status"], looked["may_redeem"], looked["min_spend_cny"]) == ("issued", True, "200.00")
    assert neighbour.get(f"/api/v1/coupons/{code}/").json()["may_redeem"] is False
    assert hotel.get(f"/api/v1/coupons/{code}/").status_code == 404
    assert till.get(f"/api/v1/coupons/{'Z' * 10_000}/").json()["code"] == "invalid"

    url = f"/api/v1/coupons/{code}/redeem/"
    assert neighbour.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="n1").json()["code"] == "merchant_not_permitted"
    low = till.post(url, {"bill_amount": "150.00"}, format="json", HTTP_IDEMPOTENCY_KEY="r0")
    assert (low.status_code, low.json()["code"]) == (409, "min_spend_not_met")
    assert till.post(url, {"bill_amount": "abc"}, format="json", HTTP_IDEMPOTENCY_KEY="r0").json()["code"] == "invalid"
    done = till.post(url, {"bill_amount": "268.00"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    again = till.post(url, {"bill_amount": "268.00"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    used = till.post(url, {"bill_amount": "268.00"}, format="json", HTTP_IDEMPOTENCY_KEY="r2")
    assert done.status_code == 201 and done.json()["coupon"]["status"] == "used"
    assert again.status_code == 200 and again.json()["replayed"]
    assert (used.status_code, used.json()["code"]) == (409, "coupon_used")
    assert WriteOff.objects.count() == 1

    assert neighbour.post(f"/api/v1/coupons/{code}/undo/").json()["code"] == "merchant_not_permitted"
    undone = till.post(f"/api/v1/coupons/{code}/undo/")
    assert undone.status_code == 200 and undone.json()["coupon"]["status"] == "issued"
    assert till.post(f"/api/v1/coupons/{code}/undo/").json()["code"] == "nothing_to_undo"


def test_an_expired_coupon_is_not_valid_at_the_till(api, bu, partner_api):
    order(api, {"item": ItemFactory(business_unit=bu).pk})
    coupon = Coupon.objects.get()
    Coupon.objects.filter(pk=coupon.pk).update(valid_from=timezone.now() - timedelta(days=2),
                                               valid_until=timezone.now() - timedelta(seconds=1))
    response = partner_api(bu).post(f"/api/v1/coupons/{coupon.code}/redeem/", {}, format="json",
                                    HTTP_IDEMPOTENCY_KEY="x")
    assert (response.status_code, response.json()["code"]) == (409, "coupon_not_valid")
    assert Coupon.objects.get().status == CouponStatus.ISSUED


def test_a_merchant_manages_its_own_catalogue_and_reads_its_orders(api, bu, partner_api):
    cinema = MerchantFactory(business_unit=bu, code="cinema")
    other = MerchantFactory(business_unit=bu, code="noodles")
    theirs = ItemFactory(business_unit=bu, merchant=other)
    keys = partner_api(bu, cinema)

    created = keys.post("/api/v1/mall/items/", {
        "kind": "merchant_coupon", "name_zh": "满200减50", "name_en": "50 off 200", "price_points": 300,
        "benefit": "money_off", "face_value_cny": "50.00", "min_spend_cny": "200.00", "valid_days": 14, "stock": 10,
        "merchant": "noodles",
    }, format="json")
    assert (created.status_code, created.json()["fields"].keys()) == (400, {"merchant"})
    body = {"kind": "merchant_coupon", "name_zh": "满200减50", "name_en": "50 off 200", "price_points": 300,
            "benefit": "money_off", "face_value_cny": "50.00", "min_spend_cny": "200.00", "stock": 10}
    missing = keys.post("/api/v1/mall/items/", body, format="json")
    assert missing.status_code == 400 and "valid_days" in missing.json()["fields"]
    created = keys.post("/api/v1/mall/items/", {**body, "valid_days": 14}, format="json")
    assert created.status_code == 201, created.json()
    item_id = created.json()["id"]
    assert created.json()["merchant"] == "cinema"

    assert [row["id"] for row in keys.get("/api/v1/mall/items/").json()["results"]] == [item_id]
    assert keys.get(f"/api/v1/mall/items/{theirs.pk}/").status_code == 404
    assert keys.patch(f"/api/v1/mall/items/{theirs.pk}/", {"stock": 1}, format="json").status_code == 404

    url = f"/api/v1/mall/items/{item_id}/"
    assert keys.patch(url, {"stock_delta": -4}, format="json").json()["stock"] == 6
    refused = keys.patch(url, {"stock_delta": -7}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (409, "stock_negative")
    assert keys.patch(url, {"stock": 25, "price_points": 280}, format="json").json()["stock"] == 25
    assert keys.patch(url, {"stock": 1, "stock_delta": 1}, format="json").status_code == 400
    assert Item.objects.get(pk=item_id).history.count() == 3

    order(api, {"item": item_id}, "mine")
    order(api, {"item": theirs.pk}, "theirs")
    orders = keys.get("/api/v1/mall/orders/", {"status": "issued"}).json()["results"]
    assert [row["item"] for row in orders] == [item_id]
    mine = Coupon.objects.get(item_id=item_id).code
    assert keys.post(f"/api/v1/coupons/{mine}/redeem/", {"bill_amount": "250"}, format="json",
                     HTTP_IDEMPOTENCY_KEY="w").status_code == 201
    write_offs = keys.get("/api/v1/mall/write-offs/", {"undone": "false"}).json()["results"]
    assert [(row["code"], row["bill_amount_cny"]) for row in write_offs] == [(mine, "250.00")]
    assert partner_api(bu, other).get("/api/v1/mall/write-offs/").json()["results"] == []
    assert keys.get("/api/v1/mall/orders/", {"status": "nonsense"}).status_code == 400


def test_members_and_partners_keep_to_their_own_endpoints(api, bu, partner_api):
    assert api.get("/api/v1/mall/items/").status_code == 403
    assert partner_api(bu).get(ITEMS).status_code == 403


def test_a_page_of_orders_costs_a_fixed_number_of_queries(api, shopper, bu, django_assert_max_num_queries):
    fund(shopper, 5000, bu)
    for n in range(5):
        order(api, {"item": ItemFactory(business_unit=bu, price_points=10).pk, "quantity": 3}, f"q{n}")
    with django_assert_max_num_queries(8):
        assert len(api.get(ORDERS).json()["results"]) == 5


def test_the_catalogue_answers_each_items_thumbnail(api, bu, settings, tmp_path):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from mall.services import item_create, item_update
    from mall.thumbnails import thumbnail_name

    settings.MEDIA_ROOT = tmp_path
    picture = io.BytesIO()
    Image.new("RGB", (300, 600), "blue").save(picture, format="PNG")
    pictured = item_create(business_unit=bu, by="test", fields={
        "kind": ItemKind.SERVICE_VOUCHER, "name_zh": "停车", "name_en": "Parking", "price_points": 100, "valid_days": 30,
        "image": SimpleUploadedFile("lot.png", picture.getvalue(), content_type="image/png")})
    plain = ItemFactory(business_unit=bu)

    rows = {row["id"]: row for row in api.get(ITEMS).json()["results"]}

    assert rows[pictured.pk]["thumbnail_url"].endswith("/" + thumbnail_name(pictured.image.name))
    assert rows[pictured.pk]["image"].endswith("/" + pictured.image.name)
    assert rows[plain.pk]["thumbnail_url"] is None and rows[plain.pk]["image"] is None
    with Image.open(tmp_path / thumbnail_name(pictured.image.name)) as small:
        assert small.size == (80, 160)
    # A new image makes a new thumbnail; one Pillow cannot read leaves none.
    Image.new("RGB", (50, 50), "green").save(picture := io.BytesIO(), format="PNG")
    item_update(item_id=pictured.pk, by="test", changes={
        "image": SimpleUploadedFile("lot2.png", picture.getvalue(), content_type="image/png")})
    pictured.refresh_from_db()
    with Image.open(tmp_path / thumbnail_name(pictured.image.name)) as small:
        assert small.size == (50, 50)
    assert api.get(f"{ITEMS}{pictured.pk}/").json()["thumbnail_url"].endswith(thumbnail_name(pictured.image.name))


def test_an_image_pillow_cannot_read_makes_no_thumbnail(bu, settings, tmp_path):
    from django.core.files.base import ContentFile

    from mall.thumbnails import thumbnail_make, thumbnail_url

    settings.MEDIA_ROOT = tmp_path
    item = ItemFactory(business_unit=bu)
    item.image.save("broken.png", ContentFile(b"not an image"), save=True)

    assert thumbnail_make(item.image) is None and thumbnail_url(item.image) is None
