-- A unit that dies and never restarts must not leave its clusters "connected" (issue 12):
-- each unit refreshes `alive_at` of its rows every tunnel_liveness_interval, and a row not
-- refreshed for 3 intervals routes nowhere and is deleted by any unit (tunnel/store.py).
ALTER TABLE remote_cluster_tunnels ADD COLUMN alive_at timestamptz NOT NULL DEFAULT now();

-- The refresh only sets alive_at: it must not tell every unit of a new tunnel. Only a new
-- claim (INSERT, or an UPDATE that sets the session) notifies.
DROP TRIGGER remote_cluster_tunnel ON remote_cluster_tunnels;
CREATE TRIGGER remote_cluster_tunnel
    AFTER INSERT OR UPDATE OF session ON remote_cluster_tunnels
    FOR EACH ROW EXECUTE FUNCTION notify_remote_cluster_tunnel();
