-- One mall order by hand, as the platform places it (one unit of a voucher): lock the member's
-- wallet, sum its free points, and only if they cover the price: lock the item row and read its
-- stock, and only if one is left: write the spend posting, consume lots (earliest expiry, then
-- earning), record each lot movement, write the two entries, update the cached balance, write
-- the settlement clearing line of the lots' issuers, take the stock, write the order, its
-- event, its coupon and the coupon's event. The flash sale runs it with first_item = last_item.
-- Variables: first_wallet, last_wallet, first_item, last_item, points (the price), bu, merchant.
\set wid random(:first_wallet, :last_wallet)
\set iid random(:first_item, :last_item)
BEGIN;
SELECT member_id AS mid FROM points_wallet WHERE id = :wid::bigint FOR UPDATE \gset
SELECT COALESCE(SUM(remaining - held), 0) AS avail FROM points_lot
  WHERE wallet_id = :wid::bigint AND remaining > held AND available_at <= now() AND expires_at >= now() \gset
\if :avail >= :points
SELECT stock FROM mall_item WHERE id = :iid::bigint FOR UPDATE \gset
\if :stock >= 1
INSERT INTO points_posting (kind, points, receipt_no, reason, explanation, idempotency_scope, idempotency_key,
    request_hash, occurred_at, created_at, business_unit_id, merchant_id, wallet_id)
  VALUES ('spend', -:points::bigint, '', 'raw mall order', '[]', 'raw', 'mall-order:' || txid_current()::text, '',
          now(), now(), :bu::bigint, :merchant::bigint, :wid::bigint)
  RETURNING id AS pid \gset
WITH open AS (
  SELECT id, remaining - held AS free, SUM(remaining - held) OVER (ORDER BY expires_at, earned_at, id) - (remaining - held) AS before
  FROM points_lot
  WHERE wallet_id = :wid::bigint AND remaining > held AND available_at <= now() AND expires_at >= now()
), taken AS (
  UPDATE points_lot l SET remaining = l.remaining - LEAST(o.free, :points::bigint - o.before)
  FROM open o WHERE l.id = o.id AND o.before < :points::bigint
  RETURNING l.id, LEAST(o.free, :points::bigint - o.before) AS take
)
INSERT INTO points_lotmovement (amount, lot_id, posting_id) SELECT -take, id, :pid::bigint FROM taken;
INSERT INTO points_entry (account, amount, business_unit_id, posting_id, wallet_id)
  VALUES ('wallet', -:points::bigint, NULL, :pid::bigint, :wid::bigint),
         ('redemption', :points::bigint, :bu::bigint, :pid::bigint, NULL);
UPDATE points_wallet SET balance = balance - :points::bigint, updated_at = now() WHERE id = :wid::bigint;
INSERT INTO settlement_clearingline (posting_id, kind, issuer_id, redeemer_id, merchant_id, points, rate_cny,
    amount_cny, created_at)
  SELECT :pid::bigint, 'redemption', l.business_unit_id, :bu::bigint, :merchant::bigint, -SUM(m.amount),
         MAX(b.point_value_cny), ROUND(-SUM(m.amount) * MAX(b.point_value_cny), 2), now()
  FROM points_lotmovement m JOIN points_lot l ON l.id = m.lot_id JOIN members_businessunit b ON b.id = l.business_unit_id
  WHERE m.posting_id = :pid::bigint GROUP BY l.business_unit_id;
UPDATE mall_item SET stock = stock - 1 WHERE id = :iid::bigint AND stock >= 1;
INSERT INTO mall_order (number, kind, quantity, list_price_points, discount_percent, unit_points, points, cash_cny,
    settlement_value_cny, points_back_on_expiry, took_stock, status, delivery_method, delivery_address, tracking_no,
    idempotency_key, request_hash, placed_at, updated_at, business_unit_id, item_id, member_id, merchant_id,
    spend_posting_id)
  VALUES ('R' || txid_current()::text, 'service_voucher', 1, :points::bigint, 0, :points::bigint, :points::bigint, 0, 0,
          false, true, 'issued', '', '', '', 'raw-' || txid_current()::text, '', now(), now(), :bu::bigint, :iid::bigint,
          :mid::bigint, :merchant::bigint, :pid::bigint)
  RETURNING id AS oid \gset
INSERT INTO mall_orderevent (from_status, to_status, reason, by, at, order_id)
  VALUES ('', 'issued', 'placed', 'member', now(), :oid::bigint);
INSERT INTO mall_coupon (code, source, status, valid_from, valid_until, issued_at, updated_at, business_unit_id,
    member_id, merchant_id, item_id, order_id)
  VALUES ('RAW' || txid_current()::text, 'generated', 'issued', now(), now() + interval '30 days', now(), now(),
          :bu::bigint, :mid::bigint, :merchant::bigint, :iid::bigint, :oid::bigint)
  RETURNING id AS cid \gset
INSERT INTO mall_couponevent (from_status, to_status, reason, by, at, coupon_id)
  VALUES ('', 'issued', 'order', 'member', now(), :cid::bigint);
\endif
\endif
END;
