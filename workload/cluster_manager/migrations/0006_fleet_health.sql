-- Health from everything a heartbeat says (issue 15), and fleet-wide defaults shared by every
-- unit. The new health inputs are generated columns computed from the status lists, so the
-- connector's one-statement heartbeat store is unchanged (1 write, 0 reads per heartbeat).

-- Sum of the counts in a status list ([{"status", "count"}], or JSON null) whose status,
-- compared case-insensitively, is (in_list = true) or is not (false) one of `statuses`.
CREATE FUNCTION status_list_count(entries jsonb, statuses text[], in_list boolean)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum((entry ->> 'count')::bigint), 0)
    FROM jsonb_array_elements(
        CASE WHEN jsonb_typeof(entries) = 'array' THEN entries ELSE '[]'::jsonb END
    ) AS entry
    WHERE (lower(entry ->> 'status') = ANY(statuses)) = in_list
$$;

-- LXD member statuses: Online, Evacuated, Offline, Blocked (lxd/db/node.go, ToAPI); any status
-- but Online and Evacuated means the member is down. MicroCeph members (microcluster): ONLINE,
-- UNREACHABLE, NOT TRUSTED, NOT FOUND, ...; any but ONLINE is down.
ALTER TABLE remote_cluster_details
    ADD COLUMN member_down_count bigint GENERATED ALWAYS AS (
        status_list_count(member_statuses, '{online,evacuated}', false)
    ) STORED,
    ADD COLUMN member_evacuated_count bigint GENERATED ALWAYS AS (
        status_list_count(member_statuses, '{evacuated}', true)
    ) STORED,
    ADD COLUMN instance_error_count bigint GENERATED ALWAYS AS (
        status_list_count(instance_statuses, '{error}', true)
    ) STORED,
    ADD COLUMN ceph_down_count bigint GENERATED ALWAYS AS (
        status_list_count(ceph_statuses, '{online}', false)
    ) STORED;

-- Fleet-wide defaults, one row shared by every unit. A cluster's own threshold (below) wins
-- over the default; NULL staleness and token expiry mean "the unit's configured value".
CREATE TABLE fleet_settings (
    id                    boolean PRIMARY KEY DEFAULT true CHECK (id),
    memory_threshold      smallint NOT NULL DEFAULT 80 CHECK (memory_threshold BETWEEN 0 AND 100),
    disk_threshold        smallint NOT NULL DEFAULT 80 CHECK (disk_threshold BETWEEN 0 AND 100),
    stale_after_intervals double precision CHECK (stale_after_intervals BETWEEN 1 AND 10000),
    token_expiry          integer CHECK (token_expiry BETWEEN 60 AND 31622400),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
INSERT INTO fleet_settings DEFAULT VALUES;

-- A cluster's thresholds become overrides: NULL follows the fleet default. Clusters that held
-- the old built-in default (80) follow the default from now on; any other value stays theirs.
ALTER TABLE remote_clusters
    ALTER COLUMN disk_threshold DROP NOT NULL,
    ALTER COLUMN disk_threshold DROP DEFAULT,
    ALTER COLUMN memory_threshold DROP NOT NULL,
    ALTER COLUMN memory_threshold DROP DEFAULT;
UPDATE remote_clusters SET disk_threshold = NULL WHERE disk_threshold = 80;
UPDATE remote_clusters SET memory_threshold = NULL WHERE memory_threshold = 80;
