-- One earn by hand: lock the wallet, write the posting, its two entries and the lot, update the
-- cached balance. The deferred trigger checks the entries sum to zero at commit, as for the platform.
-- Variables: first_wallet, last_wallet, bu, merchant.
\set wid random(:first_wallet, :last_wallet)
\set cents random(1000, 200000)
\set pts :cents / 100
BEGIN;
SELECT balance FROM points_wallet WHERE id = :wid::bigint FOR UPDATE;
INSERT INTO points_posting (kind, points, amount_cny, receipt_no, reason, explanation, idempotency_scope,
    idempotency_key, request_hash, occurred_at, created_at, business_unit_id, merchant_id, wallet_id)
  VALUES ('earn', :pts::bigint, :cents::numeric / 100, 'raw', '', '[]', 'raw', txid_current()::text, '', now(), now(), :bu::bigint,
    :merchant::bigint, :wid::bigint)
  RETURNING id AS pid \gset
INSERT INTO points_entry (account, amount, business_unit_id, posting_id, wallet_id)
  VALUES ('issuance', -:pts::bigint, :bu::bigint, :pid::bigint, NULL), ('wallet', :pts::bigint, NULL, :pid::bigint, :wid::bigint);
INSERT INTO points_lot (rule_code, amount, remaining, earned_at, available_at, expires_at, business_unit_id,
    merchant_id, posting_id, wallet_id)
  VALUES ('', :pts::bigint, :pts::bigint, now(), now(), now() + interval '12 months', :bu::bigint, :merchant::bigint, :pid::bigint, :wid::bigint);
UPDATE points_wallet SET balance = balance + :pts::bigint, updated_at = now() WHERE id = :wid::bigint;
END;
