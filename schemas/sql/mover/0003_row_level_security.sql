-- Row-level security on every tenant-owned table of the catalog. The mover works as
-- cairn_mover_rt (not an owner, not superuser, no BYPASSRLS; created by the stack / the
-- compose init script). A transaction sees one tenant's rows:
--   app.tenant_id  the tenant whose task or event is being handled, or
--   app.system     'on' only for the cross-tenant claim of the next task.
-- With neither set, no tenant row is visible.
ALTER TABLE restore_point_disks ADD COLUMN tenant_id text;
UPDATE restore_point_disks d SET tenant_id = r.tenant_id
  FROM restore_points r WHERE r.id = d.restore_point_id;
ALTER TABLE restore_point_disks ALTER COLUMN tenant_id SET NOT NULL;

CREATE FUNCTION rls_ok(t text) RETURNS boolean
  LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('app.system', true), '') = 'on'
        OR t = nullif(current_setting('app.tenant_id', true), '')
$$;

DO $$
DECLARE tbl text;
BEGIN
  FOREACH tbl IN ARRAY ARRAY['tasks', 'restore_points', 'restore_point_disks', 'file_index',
                             'tenant_keys'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY tenant_rw ON %I USING (rls_ok(tenant_id)) '
                   'WITH CHECK (rls_ok(tenant_id))', tbl);
  END LOOP;
END
$$;

-- The grants of the runtime role, re-applied by the mover at every start (the role may be
-- created after the migrations ran); false when the role does not exist.
CREATE FUNCTION grant_runtime_role() RETURNS boolean
  LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn_mover_rt') THEN
    RETURN false;
  END IF;
  EXECUTE 'GRANT USAGE ON SCHEMA catalog TO cairn_mover_rt';
  EXECUTE 'GRANT SELECT ON catalog.repositories TO cairn_mover_rt';
  EXECUTE 'GRANT SELECT, INSERT ON catalog.tenant_keys TO cairn_mover_rt';
  EXECUTE 'GRANT SELECT, INSERT, UPDATE ON catalog.tasks TO cairn_mover_rt';
  EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON catalog.restore_points, '
          'catalog.restore_point_disks, catalog.file_index TO cairn_mover_rt';
  EXECUTE 'GRANT SELECT, INSERT, UPDATE ON catalog.outbox, catalog.applied_events '
          'TO cairn_mover_rt';
  EXECUTE 'GRANT USAGE ON SEQUENCE catalog.outbox_seq_seq TO cairn_mover_rt';
  EXECUTE 'GRANT EXECUTE ON FUNCTION catalog.rls_ok(text) TO cairn_mover_rt';
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION grant_runtime_role() FROM PUBLIC;
SELECT grant_runtime_role();
