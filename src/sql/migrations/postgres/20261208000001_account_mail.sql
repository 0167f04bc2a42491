-- tower-jwt-auth: mail for accounts. E-mail addresses become unique by their key (ASCII letters
-- lower-cased: `lower` under the "C" collation) and can be verified; one-time tokens (password
-- reset, e-mail verification) are kept as SHA-256 hashes, one live token per account and purpose.

ALTER TABLE auth_users ADD COLUMN email_key TEXT;
ALTER TABLE auth_users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- Existing addresses get their key, except where accounts already share one: there only the
-- oldest account does (the others keep their address, but mail cannot find them by it), so
-- that the migration never fails nor drops an address.
UPDATE auth_users SET email_key = lower(email COLLATE "C")
WHERE email IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM auth_users AS older
    WHERE lower(older.email COLLATE "C") = lower(auth_users.email COLLATE "C")
      AND (older.created_at, older.id COLLATE "C") < (auth_users.created_at, auth_users.id COLLATE "C")
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
