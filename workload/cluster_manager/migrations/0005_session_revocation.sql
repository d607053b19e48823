-- Sessions ended by signing out, kept until they would have expired anyway. Every unit holds
-- them in memory, filled at start and kept by the 'session_revoked' notification, so checking
-- a request's session costs no database round trip. Payload: "<session id> <expiry, unix s>".
CREATE TABLE revoked_sessions (
    session_id text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_sessions_expires_at ON revoked_sessions (expires_at);

CREATE FUNCTION notify_session_revoked() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify(
        'session_revoked',
        NEW.session_id || ' ' || floor(extract(epoch FROM NEW.expires_at))::bigint
    );
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER session_revoked
    AFTER INSERT ON revoked_sessions
    FOR EACH ROW EXECUTE FUNCTION notify_session_revoked();
