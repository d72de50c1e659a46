-- Row-level security on the tenant-owned statistics. The stats service works as
-- cairn_stats_rt (not an owner, not superuser, no BYPASSRLS); each event is counted in a
-- transaction scoped to its own tenant (app.tenant_id; '' for platform events without one).
CREATE FUNCTION rls_ok(t text) RETURNS boolean
  LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('app.system', true), '') = 'on'
        OR t = coalesce(current_setting('app.tenant_id', true), '')
$$;

ALTER TABLE event_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rw ON event_counts USING (rls_ok(tenant_id)) WITH CHECK (rls_ok(tenant_id));

CREATE FUNCTION grant_runtime_role() RETURNS boolean
  LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn_stats_rt') THEN
    RETURN false;
  END IF;
  EXECUTE 'GRANT USAGE ON SCHEMA stats TO cairn_stats_rt';
  EXECUTE 'GRANT SELECT, INSERT, UPDATE ON stats.event_counts, stats.applied_events '
          'TO cairn_stats_rt';
  EXECUTE 'GRANT SELECT ON stats.v_event_counts TO cairn_stats_rt';
  EXECUTE 'GRANT EXECUTE ON FUNCTION stats.rls_ok(text) TO cairn_stats_rt';
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION grant_runtime_role() FROM PUBLIC;
SELECT grant_runtime_role();
