-- tower-jwt-auth: refresh retries. A client that lost the answer to a refresh may present the
-- token it sent again, for a short while, and get the same new token back: each family keeps
-- the token its last rotation replaced (its hash), the new token sealed under the old one (a
-- one-time pad only the old token's holder can take off), and until when that retry is allowed.

ALTER TABLE auth_sessions ADD COLUMN previous_hash BYTEA;
ALTER TABLE auth_sessions ADD COLUMN previous_sealed BYTEA;
ALTER TABLE auth_sessions ADD COLUMN retry_until BIGINT NOT NULL DEFAULT 0;
