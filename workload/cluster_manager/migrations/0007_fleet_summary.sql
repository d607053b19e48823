-- Fleet views that do not grow with the fleet (issue 19).

-- The overview's figures, grouped by cluster status and health, computed by one unit at a time
-- (under an advisory lock) and read by every unit: one row, never written by heartbeats.
CREATE TABLE fleet_summary (
    id                  boolean PRIMARY KEY DEFAULT true CHECK (id),
    computed_at         timestamptz NOT NULL,
    stale_after_seconds double precision NOT NULL,
    groups              jsonb NOT NULL
);

-- Search by name substring through a trigram index. pg_trgm is a trusted extension (any user
-- who may create in the database may add it); where it is missing or refused, search still
-- works, by a scan of the names.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%): name search scans', SQLERRM;
END
$$;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX remote_clusters_name_trgm ON remote_clusters USING gin (name gin_trgm_ops);
    END IF;
END
$$;

-- The clusters with a member down: few, so a list of clusters in error reads them, not the
-- fleet. A heartbeat adds an entry only for a cluster that has a member down (partial index).
CREATE INDEX remote_cluster_details_down ON remote_cluster_details (cluster_id)
    WHERE member_down_count > 0 OR ceph_down_count > 0;
