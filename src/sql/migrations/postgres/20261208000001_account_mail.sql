-- tower-jwt-auth: mail for accounts. E-mail addresses become unique by their key (ASCII letters
-- lower-cased: `lower` under the "C" collation) and can be verified; one-time tokens (password
-- reset, e-mail verification) are kept as SHA-256 hashes, one live token per account and purpose.

ALTER TABLE auth_users ADD COLUMN email_key TEXT;
ALTER TABLE auth_users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- Existing addresses get their key, except where accounts already share one: there only the
-- oldest account does (the others keep their address, but mail cannot find them by it), so
-- that the migration never fails nor drops an address. One sort, by the key (not a scan per
-- row): fast on a large table.
UPDATE auth_users SET email_key = lower(email COLLATE "C")
WHERE id IN (
    SELECT id FROM (
        SELECT id, ROW_NUMBER() OVER (
            PARTITION BY lower(email COLLATE "C") ORDER BY created_at, id
        ) AS n
        FROM auth_users WHERE email IS NOT NULL
    ) AS ranked
    WHERE n = 1
);
CREATE UNIQUE INDEX auth_users_by_email_key ON auth_users (email_key);

CREATE TABLE auth_account_tokens (
    token_hash BYTEA   PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    issued_at  BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    UNIQUE (user_id, purpose)
);
CREATE INDEX auth_account_tokens_by_expiry ON auth_account_tokens (expires_at);
