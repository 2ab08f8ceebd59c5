-- One payment with points authorised and captured by hand, as two transactions on random
-- wallets: the hold of hold_capture.sql (wallet locked, a lot with enough free points, the hold,
-- its allocation and event, the lot's and the wallet's points reserved) with the payment row and
-- its event; then the capture (wallet and payment locked, the spend posting, its lot movement
-- and two entries, the settlement clearing line, the points taken from the lot and the wallet,
-- the hold and the payment moved to captured, each with its event).
-- Variables: first_wallet, last_wallet, points, bu.
\set wid random(:first_wallet, :last_wallet)
BEGIN;
SELECT member_id AS mid FROM points_wallet WHERE id = :wid::bigint FOR UPDATE \gset
SELECT COALESCE(MIN(id), 0) AS lot FROM (
  SELECT id FROM points_lot WHERE wallet_id = :wid::bigint AND remaining - held >= :points::bigint
    AND available_at <= now() AND expires_at >= now() ORDER BY expires_at, earned_at, id LIMIT 1) l \gset
\if :lot > 0
INSERT INTO points_hold (wallet_id, business_unit_id, points, captured, status, purpose, reference, expires_at,
    idempotency_scope, idempotency_key, request_hash, created_at)
  VALUES (:wid::bigint, :bu::bigint, :points::bigint, 0, 'held', 'raw payment', '', now() + interval '15 minutes',
          'raw', txid_current()::text, '', now())
  RETURNING id AS hid \gset
INSERT INTO points_holdallocation (hold_id, lot_id, points) VALUES (:hid::bigint, :lot::bigint, :points::bigint);
INSERT INTO points_holdevent (hold_id, from_status, to_status, points, reason, at)
  VALUES (:hid::bigint, '', 'held', :points::bigint, '', now());
UPDATE points_lot SET held = held + :points::bigint WHERE id = :lot::bigint;
UPDATE points_wallet SET held = held + :points::bigint, updated_at = now() WHERE id = :wid::bigint;
INSERT INTO mall_payment (bill_no, bill_amount, status, presence, point_value_cny, unit, max_share_percent, cap_points,
    points_part_earns, points, amount_cny, captured_points, captured_cny, refunded_points, refunded_cny, expires_at,
    idempotency_scope, idempotency_key, request_hash, created_at, updated_at, business_unit_id, hold_id, member_id)
  SELECT 'raw-' || txid_current()::text, 1000, 'authorized', 'member_id', b.point_value_cny, 1, 100, NULL, false,
         :points::bigint, ROUND(:points::bigint * b.point_value_cny, 2), 0, 0, 0, 0, now() + interval '15 minutes',
         'raw', txid_current()::text, '', now(), now(), :bu::bigint, :hid::bigint, :mid::bigint
  FROM members_businessunit b WHERE b.id = :bu::bigint
  RETURNING id AS payid \gset
INSERT INTO mall_paymentevent (from_status, to_status, points, amount_cny, points_to_expired_lots, idempotency_scope,
    idempotency_key, request_hash, reason, at, payment_id)
  VALUES ('', 'authorized', :points::bigint, 0, 0, 'raw', txid_current()::text, '', '', now(), :payid::bigint);
\endif
END;
\if :lot > 0
BEGIN;
SELECT balance FROM points_wallet WHERE id = :wid::bigint FOR UPDATE;
SELECT status FROM mall_payment WHERE id = :payid::bigint FOR UPDATE;
SELECT status FROM points_hold WHERE id = :hid::bigint;
INSERT INTO points_posting (kind, points, receipt_no, event_type, reason, explanation, idempotency_scope,
    idempotency_key, request_hash, occurred_at, created_at, business_unit_id, wallet_id)
  VALUES ('spend', -:points::bigint, '', '', 'raw payment', '[]', 'raw', txid_current()::text, '', now(), now(),
          :bu::bigint, :wid::bigint)
  RETURNING id AS pid \gset
INSERT INTO points_lotmovement (amount, lot_id, posting_id) VALUES (-:points::bigint, :lot::bigint, :pid::bigint);
INSERT INTO points_entry (account, amount, business_unit_id, posting_id, wallet_id)
  VALUES ('wallet', -:points::bigint, NULL, :pid::bigint, :wid::bigint),
         ('redemption', :points::bigint, :bu::bigint, :pid::bigint, NULL);
INSERT INTO settlement_clearingline (posting_id, kind, issuer_id, redeemer_id, merchant_id, points, rate_cny,
    amount_cny, created_at)
  SELECT :pid::bigint, 'redemption', l.business_unit_id, :bu::bigint, NULL, :points::bigint, b.point_value_cny,
         ROUND(:points::bigint * b.point_value_cny, 2), now()
  FROM points_lot l JOIN members_businessunit b ON b.id = l.business_unit_id WHERE l.id = :lot::bigint;
UPDATE points_lot SET remaining = remaining - :points::bigint, held = held - :points::bigint WHERE id = :lot::bigint;
UPDATE points_wallet SET balance = balance - :points::bigint, held = held - :points::bigint, updated_at = now()
  WHERE id = :wid::bigint;
UPDATE points_hold SET status = 'captured', captured = :points::bigint, capture_posting_id = :pid::bigint,
    resolved_at = now() WHERE id = :hid::bigint AND status = 'held';
INSERT INTO points_holdevent (hold_id, from_status, to_status, points, reason, at)
  VALUES (:hid::bigint, 'held', 'captured', :points::bigint, '', now());
UPDATE mall_payment SET status = 'captured', captured_points = :points::bigint,
    captured_cny = amount_cny, capture_posting_id = :pid::bigint, updated_at = now()
  WHERE id = :payid::bigint AND status = 'authorized';
INSERT INTO mall_paymentevent (from_status, to_status, points, amount_cny, points_to_expired_lots, idempotency_scope,
    idempotency_key, request_hash, reason, at, payment_id, posting_id)
  VALUES ('authorized', 'captured', :points::bigint, 0, 0, 'raw', txid_current()::text, '', '', now(), :payid::bigint,
          :pid::bigint);
END;
\endif
