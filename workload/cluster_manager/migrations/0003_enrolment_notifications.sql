-- Tell every process about enrolments too, with what its identity cache needs, so the
-- heartbeat of a cluster enrolled through another unit needs no read either.
-- Payloads: "+<fingerprint> <id> <name>" for an active cluster, "-<fingerprint>" to forget one.
CREATE OR REPLACE FUNCTION notify_remote_cluster_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('remote_cluster_changed', '-' || OLD.fingerprint);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'ACTIVE' THEN
        PERFORM pg_notify(
            'remote_cluster_changed', '+' || NEW.fingerprint || ' ' || NEW.id || ' ' || NEW.name
        );
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER remote_cluster_changed ON remote_clusters;
CREATE TRIGGER remote_cluster_changed
    AFTER INSERT OR DELETE OR UPDATE OF fingerprint, status ON remote_clusters
    FOR EACH ROW EXECUTE FUNCTION notify_remote_cluster_change();
