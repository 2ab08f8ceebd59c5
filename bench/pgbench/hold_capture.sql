-- One hold and its capture by hand, as two transactions on random wallets: lock the wallet, find
-- a spendable lot with enough free points, write the hold, its allocation and event, reserve the
-- lot's and the wallet's points; then lock the wallet again, write the spend posting, its lot
-- movement and two entries, take the points from the lot and the wallet, move the hold to
-- captured and write its event. Variables: first_wallet, last_wallet, points, bu.
\set wid random(:first_wallet, :last_wallet)
BEGIN;
SELECT balance FROM points_wallet WHERE id = :wid::bigint FOR UPDATE;
SELECT COALESCE(MIN(id), 0) AS lot FROM (
  SELECT id FROM points_lot WHERE wallet_id = :wid::bigint AND remaining - held >= :points::bigint
    AND available_at <= now() AND expires_at >= now() ORDER BY expires_at, earned_at, id LIMIT 1) l \gset
\if :lot > 0
INSERT INTO points_hold (wallet_id, business_unit_id, points, captured, status, purpose, reference, expires_at,
    idempotency_scope, idempotency_key, request_hash, created_at)
  VALUES (:wid::bigint, :bu::bigint, :points::bigint, 0, 'held', 'raw', '', now() + interval '15 minutes', 'raw',
          txid_current()::text, '', now())
  RETURNING id AS hid \gset
INSERT INTO points_holdallocation (hold_id, lot_id, points) VALUES (:hid::bigint, :lot::bigint, :points::bigint);
INSERT INTO points_holdevent (hold_id, from_status, to_status, points, reason, at)
  VALUES (:hid::bigint, '', 'held', :points::bigint, '', now());
UPDATE points_lot SET held = held + :points::bigint WHERE id = :lot::bigint;
UPDATE points_wallet SET held = held + :points::bigint, updated_at = now() WHERE id = :wid::bigint;
\endif
END;
\if :lot > 0
BEGIN;
SELECT balance FROM points_wallet WHERE id = :wid::bigint FOR UPDATE;
SELECT status FROM points_hold WHERE id = :hid::bigint;
INSERT INTO points_posting (kind, points, receipt_no, event_type, reason, explanation, idempotency_scope,
    idempotency_key, request_hash, occurred_at, created_at, business_unit_id, wallet_id)
  VALUES ('spend', -:points::bigint, '', '', 'raw', '[]', 'raw', txid_current()::text, '', now(), now(), :bu::bigint,
          :wid::bigint)
  RETURNING id AS pid \gset
INSERT INTO points_lotmovement (amount, lot_id, posting_id) VALUES (-:points::bigint, :lot::bigint, :pid::bigint);
INSERT INTO points_entry (account, amount, business_unit_id, posting_id, wallet_id)
  VALUES ('wallet', -:points::bigint, NULL, :pid::bigint, :wid::bigint),
         ('redemption', :points::bigint, :bu::bigint, :pid::bigint, NULL);
UPDATE points_lot SET remaining = remaining - :points::bigint, held = held - :points::bigint WHERE id = :lot::bigint;
UPDATE points_wallet SET balance = balance - :points::bigint, held = held - :points::bigint, updated_at = now()
  WHERE id = :wid::bigint;
UPDATE points_hold SET status = 'captured', captured = :points::bigint, capture_posting_id = :pid::bigint,
    resolved_at = now() WHERE id = :hid::bigint AND status = 'held';
INSERT INTO points_holdevent (hold_id, from_status, to_status, points, reason, at)
  VALUES (:hid::bigint, 'held', 'captured', :points::bigint, '', now());
END;
\endif
