-- One coupon written off at the till by hand: take an issued coupon (the first from a random
-- place among the raw orders' coupons, else the first of them, skipping those another client
-- holds), lock its order, move the coupon to used with its event, write the write-off, move the
-- order to used with its event.
-- Variables: first_coupon, last_coupon (the raw coupons), merchant, bu.
\set start random(:first_coupon, :last_coupon)
BEGIN;
SELECT COALESCE((SELECT id FROM mall_coupon WHERE id >= :start::bigint AND id <= :last_coupon::bigint
                  AND status = 'issued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED),
                 (SELECT id FROM mall_coupon WHERE id >= :first_coupon::bigint AND id <= :last_coupon::bigint
                  AND status = 'issued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED), 0) AS cid \gset
\if :cid > 0
SELECT order_id AS oid FROM mall_coupon WHERE id = :cid::bigint \gset
SELECT status FROM mall_order WHERE id = :oid::bigint FOR UPDATE;
UPDATE mall_coupon SET status = 'used', redeemed_at = now(), redeemed_by_id = :merchant::bigint, updated_at = now()
  WHERE id = :cid::bigint AND status = 'issued';
INSERT INTO mall_couponevent (from_status, to_status, reason, by, at, coupon_id, merchant_id)
  VALUES ('issued', 'used', 'written off', 'raw', now(), :cid::bigint, :merchant::bigint);
INSERT INTO mall_writeoff (by, idempotency_scope, idempotency_key, request_hash, at, undone_by, business_unit_id,
    coupon_id, merchant_id)
  VALUES ('raw', 'raw', txid_current()::text, '', now(), '', :bu::bigint, :cid::bigint, :merchant::bigint);
UPDATE mall_order SET status = 'used', updated_at = now() WHERE id = :oid::bigint AND status = 'issued';
INSERT INTO mall_orderevent (from_status, to_status, reason, by, at, order_id)
  VALUES ('issued', 'used', 'written off', 'raw', now(), :oid::bigint);
\endif
END;
