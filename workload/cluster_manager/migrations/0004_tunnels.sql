-- Which unit holds each cluster's reverse tunnel (issue 12), and since when. One row per
-- cluster: a new tunnel replaces the row, so there is only ever one live tunnel per cluster.
-- `session` tells the tunnels of one cluster apart: a unit only deletes its own row when its
-- tunnel ends, and the NOTIFY below makes the unit holding an older tunnel close it at once.
CREATE TABLE remote_cluster_tunnels (
    cluster_id   bigint      PRIMARY KEY REFERENCES remote_clusters (id) ON DELETE CASCADE,
    unit_address text        NOT NULL,
    session      text        NOT NULL,
    connected_at timestamptz NOT NULL DEFAULT now()
);

-- Payload "<cluster id> <session>": every unit closes any other tunnel of that cluster.
CREATE FUNCTION notify_remote_cluster_tunnel() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('remote_cluster_tunnel', NEW.cluster_id || ' ' || NEW.session);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER remote_cluster_tunnel
    AFTER INSERT OR UPDATE ON remote_cluster_tunnels
    FOR EACH ROW EXECUTE FUNCTION notify_remote_cluster_tunnel();
