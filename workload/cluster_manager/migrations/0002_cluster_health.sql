-- What the Management API sorts, filters and aggregates on, kept beside each heartbeat.
-- Generated columns are recomputed by PostgreSQL whenever a heartbeat overwrites the row, so
-- the connector's one-statement store stays as it is and listing 10,000 clusters by memory
-- usage or health never unpacks JSON for every row.

-- Highest usage/total over a heartbeat's storage pools (NULL when no pool has a size).
CREATE FUNCTION storage_pool_max_usage_ratio(pools jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT max((pool ->> 'usage')::double precision / (pool ->> 'total')::double precision)
    FROM jsonb_array_elements(pools) AS pool
    WHERE (pool ->> 'total')::numeric > 0
$$;

-- Sum of one numeric field over a heartbeat's storage pools (numeric: cannot overflow).
CREATE FUNCTION storage_pool_sum(pools jsonb, field text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum((pool ->> field)::numeric), 0) FROM jsonb_array_elements(pools) AS pool
$$;

ALTER TABLE remote_cluster_details
    ADD COLUMN memory_usage_ratio double precision GENERATED ALWAYS AS (
        CASE WHEN memory_total_amount > 0
             THEN memory_usage::double precision / memory_total_amount END
    ) STORED,
    ADD COLUMN storage_max_usage_ratio double precision GENERATED ALWAYS AS (
        storage_pool_max_usage_ratio(storage_pool_usages)
    ) STORED,
    ADD COLUMN storage_total numeric GENERATED ALWAYS AS (
        storage_pool_sum(storage_pool_usages, 'total')
    ) STORED,
    ADD COLUMN storage_usage numeric GENERATED ALWAYS AS (
        storage_pool_sum(storage_pool_usages, 'usage')
    ) STORED;

-- Sorting by join time pages through an index. Columns a heartbeat rewrites every minute
-- (last_status_update_at, the usage ratios) are deliberately not indexed: an index on them
-- would turn every heartbeat's HOT update into a full one, and sorting 10,000 rows in memory
-- costs a few milliseconds.
CREATE INDEX remote_clusters_joined_at ON remote_clusters (joined_at, name);
