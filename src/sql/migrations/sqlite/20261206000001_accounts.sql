-- tower-jwt-auth: accounts, refresh families, the denylist and the login limiter (SQLite).
-- Times are Unix seconds unless the column name ends in _ms. Roles and scopes are JSON arrays of
-- strings. Refresh tokens are never stored: only their SHA-256 (32 bytes).

CREATE TABLE auth_users (
    id            TEXT    PRIMARY KEY,
    -- The normalised username (what logins look up).
    username      TEXT    NOT NULL UNIQUE,
    -- Its UTS #39 skeleton: two names that look alike cannot both exist.
    skeleton      TEXT    NOT NULL UNIQUE,
    email         TEXT,
    -- PHC string (argon2id, or a legacy bcrypt hash).
    password_hash TEXT    NOT NULL,
    roles         TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- One row per refresh family (one login's session; the access tokens' `sid`).
CREATE TABLE auth_sessions (
    session_id      TEXT    PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    client_id       TEXT    NOT NULL,
    scopes          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    -- The absolute end of the session, whatever the refreshes.
    expires_at      INTEGER NOT NULL,
    -- The current token's end unless rotated first (never after expires_at).
    idle_expires_at INTEGER NOT NULL,
    -- SHA-256 of the family's current refresh token.
    current_hash    BLOB    NOT NULL UNIQUE,
    -- How many times the family rotated.
    rotations       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id, created_at);
CREATE INDEX auth_sessions_by_expiry ON auth_sessions (idle_expires_at);

-- Tokens a family has rotated away from, kept to detect their reuse (the most recent ones).
CREATE TABLE auth_rotated_tokens (
    token_hash BLOB    PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES auth_sessions (session_id) ON DELETE CASCADE,
    -- The family's rotation count when this token was replaced.
    rotation   INTEGER NOT NULL
);
CREATE INDEX auth_rotated_tokens_by_session ON auth_rotated_tokens (session_id, rotation);

-- The denylist, as an append-only log read in `seq` order: kind 't' a token (`id` = jti),
-- 's' a session (`id` = sid), 'u' a subject (`id` = sub) whose tokens issued before
-- `not_before` are revoked. A row matters until `until`, then it is deleted.
CREATE TABLE auth_revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL CHECK (kind IN ('t', 's', 'u')),
    issuer     TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    not_before INTEGER NOT NULL DEFAULT 0,
    until      INTEGER NOT NULL
);
CREATE INDEX auth_revocations_by_until ON auth_revocations (until);

-- The login limiter: failure records of a (client, username) pair (`key` 'p:<client> <name>')
-- or a username ('a:<name>').
CREATE TABLE auth_limiter_failures (
    key             TEXT    PRIMARY KEY,
    count           INTEGER NOT NULL,
    last_ms         INTEGER NOT NULL,
    locked_until_ms INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL
);
CREATE INDEX auth_limiter_failures_by_expiry ON auth_limiter_failures (expires_ms);

-- The limiter's per-client rates (GCRA theoretical arrival times).
CREATE TABLE auth_limiter_clients (
    client           TEXT    PRIMARY KEY,
    failures_ms      INTEGER NOT NULL,
    verifications_ms INTEGER NOT NULL,
    registrations_ms INTEGER NOT NULL,
    expires_ms       INTEGER NOT NULL
);
CREATE INDEX auth_limiter_clients_by_expiry ON auth_limiter_clients (expires_ms);
