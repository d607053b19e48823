-- Every state-changing call made through the manager, written before the call is made and
-- completed after it: a row whose finished_at is null is a call whose outcome is unknown
-- (the unit stopped while it ran). target 'manager' is a Management API call; 'cluster' is a
-- call sent to a cluster's LXD through its tunnel (cluster and path then name LXD's).
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    subject     text        NOT NULL,
    user_name   text        NOT NULL,
    target      text        NOT NULL CHECK (target IN ('manager', 'cluster')),
    cluster     text,
    method      text        NOT NULL,
    path        text        NOT NULL,
    body_sha256 text,
    status      integer,
    result      text,
    duration_ms double precision
);
CREATE INDEX audit_log_started_at ON audit_log (started_at);
CREATE INDEX audit_log_subject ON audit_log (subject, id);
CREATE INDEX audit_log_cluster ON audit_log (cluster, id);
