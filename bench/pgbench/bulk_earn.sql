-- 1,000 earns in one transaction, set-based: lock the 1,000 wallets in id order (so concurrent
-- batches never deadlock), then one statement writes the postings, their entries and lots, and
-- adds each wallet's total to its cached balance.
-- Variables: first_wallet, wallets (how many), bu, merchant.
\set start random(0, :wallets - 1)
BEGIN;
SELECT id FROM points_wallet
  WHERE id IN (SELECT :first_wallet::bigint + (:start::bigint + g * 7919) % :wallets::bigint FROM generate_series(1, 1000) g)
  ORDER BY id FOR UPDATE;
WITH batch AS MATERIALIZED (
  SELECT g, :first_wallet::bigint + (:start::bigint + g * 7919) % :wallets::bigint AS wid, 10 + (random() * 1990)::int AS pts
  FROM generate_series(1, 1000) g
), p AS (
  INSERT INTO points_posting (kind, points, amount_cny, receipt_no, reason, explanation, idempotency_scope,
      idempotency_key, request_hash, occurred_at, created_at, business_unit_id, merchant_id, wallet_id)
  SELECT 'earn', pts, pts, 'raw', '', '[]', 'raw-bulk', txid_current()::text || '-' || g, '', now(), now(), :bu::bigint,
    :merchant::bigint, wid
  FROM batch
  RETURNING id, wallet_id, points
), e AS (
  INSERT INTO points_entry (account, amount, business_unit_id, posting_id, wallet_id)
  SELECT 'issuance', -points, :bu::bigint, id, NULL FROM p
  UNION ALL SELECT 'wallet', points, NULL, id, wallet_id FROM p
), l AS (
  INSERT INTO points_lot (rule_code, amount, remaining, earned_at, available_at, expires_at, business_unit_id,
      merchant_id, posting_id, wallet_id)
  SELECT '', points, points, now(), now(), now() + interval '12 months', :bu::bigint, :merchant::bigint, id, wallet_id FROM p
)
UPDATE points_wallet w SET balance = w.balance + t.total, updated_at = now()
FROM (SELECT wallet_id, SUM(points) AS total FROM p GROUP BY wallet_id) t WHERE w.id = t.wallet_id;
END;
