-- Cluster lists that touch only the page at 100,000 clusters (issue 19).
--
-- Every sort key and filter of the list lives beside the heartbeat in remote_cluster_details,
-- next to the cluster's name (ties sort by name), with a btree index per sort key and
-- direction: a page is an index walk. The heartbeat's one statement writes the new plain
-- column (the heartbeat time) and PostgreSQL
-- computes the generated health rank in that same statement. Health itself depends on time
-- (staleness), so the rank stored here is health without staleness; the list combines it with
-- the index on the heartbeat time (cluster_listing / cluster_pages).

-- Every cluster has a details row from the moment it joins (before its first heartbeat the
-- heartbeat columns are NULL), so one index walk over this table orders the whole fleet.
-- Beside the heartbeat it carries the cluster's name (never renamed), status and join time
-- (copied when it joins), when its latest heartbeat arrived (equal to
-- remote_clusters.last_status_update_at: the heartbeat's statement writes both with the same
-- now(); NULL before the first), and the thresholds in force for it (its own, else the fleet
-- default), kept current by the triggers below.
ALTER TABLE remote_cluster_details
    ALTER COLUMN cpu_total_count DROP NOT NULL,
    ALTER COLUMN cpu_load_1 DROP NOT NULL,
    ALTER COLUMN cpu_load_5 DROP NOT NULL,
    ALTER COLUMN cpu_load_15 DROP NOT NULL,
    ALTER COLUMN memory_total_amount DROP NOT NULL,
    ALTER COLUMN memory_usage DROP NOT NULL,
    ALTER COLUMN instance_count DROP NOT NULL,
    ALTER COLUMN member_count DROP NOT NULL,
    ALTER COLUMN instance_statuses DROP NOT NULL,
    ALTER COLUMN member_statuses DROP NOT NULL,
    ALTER COLUMN ceph_statuses DROP NOT NULL,
    ALTER COLUMN storage_pool_usages DROP NOT NULL,
    ALTER COLUMN server_metrics DROP NOT NULL,
    ALTER COLUMN ui_url DROP NOT NULL,
    ADD COLUMN name text,
    ADD COLUMN cluster_status text,
    ADD COLUMN joined_at timestamptz,
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN effective_memory_threshold smallint,
    ADD COLUMN effective_disk_threshold smallint;

INSERT INTO remote_cluster_details (cluster_id)
SELECT c.id FROM remote_clusters c
WHERE NOT EXISTS (SELECT FROM remote_cluster_details d WHERE d.cluster_id = c.id);

UPDATE remote_cluster_details d
SET name = c.name,
    cluster_status = c.status,
    joined_at = c.joined_at,
    heartbeat_at = CASE WHEN d.cpu_total_count IS NOT NULL
                        THEN coalesce(c.last_status_update_at, c.joined_at) END,
    effective_memory_threshold = coalesce(c.memory_threshold, s.memory_threshold, 80),
    effective_disk_threshold = coalesce(c.disk_threshold, s.disk_threshold, 80)
FROM remote_clusters c LEFT JOIN fleet_settings s ON true
WHERE c.id = d.cluster_id;

ALTER TABLE remote_cluster_details
    ALTER COLUMN name SET NOT NULL,
    ALTER COLUMN cluster_status SET NOT NULL,
    ALTER COLUMN joined_at SET NOT NULL;

-- When the cluster was last heard of (its join, before a heartbeat): staleness is a range.
ALTER TABLE remote_cluster_details
    ADD COLUMN seen_at timestamptz GENERATED ALWAYS AS (coalesce(heartbeat_at, joined_at)) STORED;

-- A cluster joins: its row, waiting for the first heartbeat.
CREATE FUNCTION add_cluster_details() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO remote_cluster_details (cluster_id, name, cluster_status, joined_at,
                                        effective_memory_threshold, effective_disk_threshold)
    SELECT NEW.id, NEW.name, NEW.status, NEW.joined_at,
           coalesce(NEW.memory_threshold, s.memory_threshold, 80),
           coalesce(NEW.disk_threshold, s.disk_threshold, 80)
    FROM (SELECT true) AS one LEFT JOIN fleet_settings s ON true;
    RETURN NULL;
END;
$$;
CREATE TRIGGER remote_cluster_added
    AFTER INSERT ON remote_clusters
    FOR EACH ROW EXECUTE FUNCTION add_cluster_details();

-- Health without staleness, as cluster_health.HEALTH_SQL decides it (3 pending: no heartbeat
-- yet; for a cluster that has sent one: 1 error (a member or Ceph member down), 2 warning (a member evacuated,
-- instances in Error, memory or a pool above the threshold), 4 healthy. (A generated column
-- cannot read the other generated columns, so the counts are taken again here.)
ALTER TABLE remote_cluster_details
    ADD COLUMN health_rank smallint GENERATED ALWAYS AS (
        CASE
            WHEN heartbeat_at IS NULL THEN 3
            WHEN status_list_count(member_statuses, '{online,evacuated}', false) > 0
                 OR status_list_count(ceph_statuses, '{online}', false) > 0 THEN 1
            WHEN status_list_count(member_statuses, '{evacuated}', true) > 0
                 OR status_list_count(instance_statuses, '{error}', true) > 0
                 OR (CASE WHEN memory_total_amount > 0
                          THEN memory_usage::double precision / memory_total_amount END) * 100
                    > coalesce(effective_memory_threshold, 80)
                 OR storage_pool_max_usage_ratio(storage_pool_usages) * 100
                    > coalesce(effective_disk_threshold, 80) THEN 2
            ELSE 4
        END
    ) STORED;

-- A cluster's own threshold (or its status) changed: its row follows at once.
CREATE FUNCTION refresh_cluster_thresholds() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE remote_cluster_details d
    SET effective_memory_threshold = coalesce(NEW.memory_threshold, s.memory_threshold, 80),
        effective_disk_threshold = coalesce(NEW.disk_threshold, s.disk_threshold, 80),
        cluster_status = NEW.status
    FROM (SELECT true) AS one LEFT JOIN fleet_settings s ON true
    WHERE d.cluster_id = NEW.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER remote_cluster_thresholds_changed
    AFTER UPDATE OF memory_threshold, disk_threshold, status ON remote_clusters
    FOR EACH ROW
    WHEN (OLD.memory_threshold IS DISTINCT FROM NEW.memory_threshold
          OR OLD.disk_threshold IS DISTINCT FROM NEW.disk_threshold
          OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION refresh_cluster_thresholds();

-- The fleet default changed (rare, by an administrator): the clusters that follow it follow.
CREATE FUNCTION refresh_fleet_thresholds() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE remote_cluster_details d
    SET effective_memory_threshold = t.memory_threshold,
        effective_disk_threshold = t.disk_threshold
    FROM (
        SELECT c.id,
               coalesce(c.memory_threshold, s.memory_threshold, 80) AS memory_threshold,
               coalesce(c.disk_threshold, s.disk_threshold, 80) AS disk_threshold
        FROM remote_clusters c LEFT JOIN fleet_settings s ON true
    ) AS t
    WHERE d.cluster_id = t.id
      AND (d.effective_memory_threshold IS DISTINCT FROM t.memory_threshold
           OR d.effective_disk_threshold IS DISTINCT FROM t.disk_threshold);
    RETURN NULL;
END;
$$;
CREATE TRIGGER fleet_thresholds_changed
    AFTER INSERT OR UPDATE OR DELETE ON fleet_settings
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_fleet_thresholds();

-- One index per sort key and direction (ties by name ascending either way), the cluster id
-- last so a page's ids come from the index alone. Heartbeats rewrite these columns, so these
-- updates are no longer HOT: PostgreSQL's cost per heartbeat grows (measured in README
-- Performance); the connector's is unchanged.
-- By health: the rank's ranges in name order, with what tells stale ones apart and the
-- status filter in the index, so the walk and the counts never read the (wide) rows.
CREATE INDEX remote_cluster_details_health ON remote_cluster_details
    (health_rank, name, cluster_id) INCLUDE (seen_at, cluster_status);
CREATE INDEX remote_cluster_details_health_desc ON remote_cluster_details
    (health_rank DESC NULLS LAST, name, cluster_id) INCLUDE (seen_at, cluster_status);
-- By name where details filter (and the stale block of the health order).
CREATE INDEX remote_cluster_details_name ON remote_cluster_details
    (name, cluster_id) INCLUDE (seen_at, health_rank, cluster_status);
CREATE INDEX remote_cluster_details_seen ON remote_cluster_details
    (heartbeat_at, name, cluster_id);
CREATE INDEX remote_cluster_details_seen_desc ON remote_cluster_details
    (heartbeat_at DESC NULLS LAST, name, cluster_id);
CREATE INDEX remote_cluster_details_memory ON remote_cluster_details
    (memory_usage_ratio, name, cluster_id);
CREATE INDEX remote_cluster_details_memory_desc ON remote_cluster_details
    (memory_usage_ratio DESC NULLS LAST, name, cluster_id);
CREATE INDEX remote_cluster_details_storage ON remote_cluster_details
    (storage_max_usage_ratio, name, cluster_id);
CREATE INDEX remote_cluster_details_storage_desc ON remote_cluster_details
    (storage_max_usage_ratio DESC NULLS LAST, name, cluster_id);
CREATE INDEX remote_cluster_details_load ON remote_cluster_details
    (cpu_load_1, name, cluster_id);
CREATE INDEX remote_cluster_details_load_desc ON remote_cluster_details
    (cpu_load_1 DESC NULLS LAST, name, cluster_id);
CREATE INDEX remote_cluster_details_instances ON remote_cluster_details
    (instance_count, name, cluster_id);
CREATE INDEX remote_cluster_details_instances_desc ON remote_cluster_details
    (instance_count DESC NULLS LAST, name, cluster_id);
CREATE INDEX remote_cluster_details_members ON remote_cluster_details
    (member_count, name, cluster_id);
CREATE INDEX remote_cluster_details_members_desc ON remote_cluster_details
    (member_count DESC NULLS LAST, name, cluster_id);
-- "At least one instance / member in status X" (jsonb containment).
CREATE INDEX remote_cluster_details_instance_statuses ON remote_cluster_details
    USING gin (instance_statuses jsonb_path_ops);
CREATE INDEX remote_cluster_details_member_statuses ON remote_cluster_details
    USING gin (member_statuses jsonb_path_ops);

-- A one-row table autovacuum never analyzes: without statistics PostgreSQL takes it for
-- 1,540 rows and plans the fleet-wide statements that join it (the overview's summary) for
-- 1,540 times the fleet.
ANALYZE fleet_settings;
