-- tower-jwt-auth: external sign-in. Accounts at identity providers linked to local accounts (known
-- by the provider's issuer and its user id; one per provider and account), and the short-lived,
-- single-use values of a sign-in in progress (flow state, sign-in codes) under the hex of a
-- 32-byte key (a SHA-256 hash of a secret only the browser holds).
--
-- Deleting an account deletes its identities: the store does so itself, in the transaction that
-- deletes the account, so it does not depend on foreign keys being enabled on the connection.

CREATE TABLE auth_identities (
    issuer    TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    user_id   TEXT    NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    -- The router's name for the provider (its route segment).
    provider  TEXT    NOT NULL,
    -- The address the provider gave when the identity was linked, for display only.
    email     TEXT,
    linked_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject),
    UNIQUE (user_id, provider)
);

CREATE TABLE auth_one_time (
    key        TEXT    PRIMARY KEY NOT NULL,
    value      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX auth_one_time_by_expiry ON auth_one_time (expires_at);
