-- Join tokens waiting to be used. The secret is kept because the HMAC join form needs it.
CREATE TABLE remote_cluster_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    secret      text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Enrolled clusters, identified by the SHA-256 fingerprint of their certificate.
CREATE TABLE remote_clusters (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  text        NOT NULL UNIQUE,
    description           text        NOT NULL DEFAULT '',
    certificate           text        NOT NULL,
    fingerprint           text        NOT NULL UNIQUE,
    status                text        NOT NULL DEFAULT 'ACTIVE'
                                      CHECK (status IN ('PENDING_APPROVAL', 'ACTIVE')),
    disk_threshold        smallint    NOT NULL DEFAULT 80 CHECK (disk_threshold BETWEEN 0 AND 100),
    memory_threshold      smallint    NOT NULL DEFAULT 80 CHECK (memory_threshold BETWEEN 0 AND 100),
    joined_at             timestamptz NOT NULL DEFAULT now(),
    last_status_update_at timestamptz
);

-- The latest heartbeat of each cluster, overwritten by the next one.
CREATE TABLE remote_cluster_details (
    cluster_id          bigint PRIMARY KEY REFERENCES remote_clusters (id) ON DELETE CASCADE,
    cpu_total_count     integer          NOT NULL,
    cpu_load_1          double precision NOT NULL,
    cpu_load_5          double precision NOT NULL,
    cpu_load_15         double precision NOT NULL,
    memory_total_amount bigint           NOT NULL,
    memory_usage        bigint           NOT NULL,
    instance_count      integer          NOT NULL,
    member_count        integer          NOT NULL,
    instance_statuses   jsonb            NOT NULL,
    member_statuses     jsonb            NOT NULL,
    ceph_statuses       jsonb            NOT NULL,
    storage_pool_usages jsonb            NOT NULL,
    server_metrics      jsonb            NOT NULL,
    ui_url              text             NOT NULL
);

-- Every process caches fingerprint -> cluster; tell them all when a cluster goes or changes.
CREATE FUNCTION notify_remote_cluster_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('remote_cluster_changed', OLD.fingerprint);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER remote_cluster_changed
    AFTER DELETE OR UPDATE OF fingerprint, status ON remote_clusters
    FOR EACH ROW EXECUTE FUNCTION notify_remote_cluster_change();
