-- One redemption by hand, racing on a few wallets: lock the wallet, sum what is available, and
-- only if it covers the points: write the posting, consume lots (earliest expiry, then earning),
-- record each lot movement, write the two entries and update the cached balance.
-- Variables: hot_first, hot_last (the wallets raced on), points, bu.
\set wid random(:hot_first, :hot_last)
BEGIN;
SELECT balance FROM points_wallet WHERE id = :wid::bigint FOR UPDATE;
SELECT COALESCE(SUM(remaining), 0) AS avail FROM points_lot
  WHERE wallet_id = :wid::bigint AND remaining > 0 AND available_at <= now() AND expires_at >= now() \gset
\if :avail >= :points
INSERT INTO points_posting (kind, points, receipt_no, reason, explanation, idempotency_scope, idempotency_key,
    request_hash, occurred_at, created_at, business_unit_id, wallet_id)
  VALUES ('spend', -:points::bigint, '', 'raw', '[]', 'raw', txid_current()::text, '', now(), now(), :bu::bigint, :wid::bigint)
  RETURNING id AS pid \gset
WITH open AS (
  SELECT id, remaining, SUM(remaining) OVER (ORDER BY expires_at, earned_at, id) - remaining AS before
  FROM points_lot
  WHERE wallet_id = :wid::bigint AND remaining > 0 AND available_at <= now() AND expires_at >= now()
), taken AS (
  UPDATE points_lot l SET remaining = l.remaining - LEAST(o.remaining, :points::bigint - o.before)
  FROM open o WHERE l.id = o.id AND o.before < :points::bigint
  RETURNING l.id, LEAST(o.remaining, :points::bigint - o.before) AS take
)
INSERT INTO points_lotmovement (amount, lot_id, posting_id) SELECT -take, id, :pid::bigint FROM taken;
INSERT INTO points_entry (account, amount, business_unit_id, posting_id, wallet_id)
  VALUES ('wallet', -:points::bigint, NULL, :pid::bigint, :wid::bigint), ('redemption', :points::bigint, :bu::bigint, :pid::bigint, NULL);
UPDATE points_wallet SET balance = balance - :points::bigint, updated_at = now() WHERE id = :wid::bigint;
\endif
END;
