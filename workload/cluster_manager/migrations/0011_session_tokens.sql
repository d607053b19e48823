-- OIDC tokens too large for the session cookie (issue 17: the access token now rides with the
-- session for clusters' LXD). A session whose tokens do not fit keeps them here, sealed with
-- AES-256-GCM under the shared session key and bound to the session id
-- (management/session_tokens.py); the cookie then holds only a mark. Rows go when the session
-- is signed out or has expired.
CREATE TABLE session_tokens (
    session_id text        PRIMARY KEY,
    sealed     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX session_tokens_expires ON session_tokens (expires_at);
