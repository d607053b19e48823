-- A unit that dies and never restarts must not leave its clusters "connected" (issue 12).
-- Each unit (each worker process: its own unit_address) refreshes its one row here every
-- tunnel_liveness_interval; a unit whose row was not refreshed for 3 intervals is dead: its
-- tunnels route nowhere and any unit deletes its rows (tunnel/store.py). One row per unit, not
-- a timestamp per tunnel, so that liveness costs one write per unit per interval.
CREATE TABLE remote_cluster_tunnel_units (
    unit_address text        PRIMARY KEY,
    alive_at     timestamptz NOT NULL DEFAULT now()
);

-- Units holding tunnels at the upgrade: alive now, dead if they do not refresh.
INSERT INTO remote_cluster_tunnel_units (unit_address)
SELECT DISTINCT unit_address FROM remote_cluster_tunnels;

CREATE INDEX remote_cluster_tunnels_unit ON remote_cluster_tunnels (unit_address);
