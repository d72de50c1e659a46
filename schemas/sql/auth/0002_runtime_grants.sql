-- The grants of the runtime role as a function, so that they can be applied again when
-- cairn_auth_rt is created after the migrations ran (auth calls it at every start, as the
-- owner; a no-op when the role does not exist). SECURITY INVOKER: it only does what the
-- calling owner may do anyway.
CREATE FUNCTION grant_runtime_role() RETURNS boolean
  LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn_auth_rt') THEN
    RETURN false;
  END IF;
  EXECUTE 'GRANT USAGE ON SCHEMA identity TO cairn_auth_rt';
  EXECUTE 'GRANT SELECT, INSERT ON identity.providers TO cairn_auth_rt';
  EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON identity.tenants, identity.users, '
          'identity.api_tokens, identity.refresh_sessions TO cairn_auth_rt';
  EXECUTE 'GRANT SELECT, INSERT ON identity.audit_log TO cairn_auth_rt';
  EXECUTE 'GRANT SELECT, INSERT, UPDATE ON identity.signing_keys, identity.outbox TO cairn_auth_rt';
  EXECUTE 'GRANT USAGE ON SEQUENCE identity.audit_log_id_seq, identity.outbox_seq_seq '
          'TO cairn_auth_rt';
  EXECUTE 'GRANT EXECUTE ON FUNCTION identity.rls_tenant_ok(uuid), identity.rls_login() '
          'TO cairn_auth_rt';
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION grant_runtime_role() FROM PUBLIC;
SELECT grant_runtime_role();
