-- identity: providers, tenants, users, API tokens, refresh sessions, audit log, signing keys
-- (the outbox comes from the runtime). Applied by db_migrate() as the schema OWNER
-- (search_path = identity, public).
-- The auth service works at run time as role cairn_auth_rt, which owns nothing, is not a
-- superuser and has no BYPASSRLS, so the row-level security below binds it. See docs/auth.md.

CREATE TABLE providers (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name         text NOT NULL UNIQUE,
  display_name text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name             text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  display_name     text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  enabled          boolean NOT NULL DEFAULT true,
  lease_expires_at timestamptz,
  contact_email    text CHECK (contact_email IS NULL OR length(contact_email) <= 254),
  epoch            bigint NOT NULL DEFAULT 1 CHECK (epoch >= 1),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id           uuid REFERENCES tenants (id) ON DELETE CASCADE, -- NULL: provider user
  username            text NOT NULL CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
  display_name        text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
  email               text CHECK (email IS NULL OR length(email) <= 254),
  enabled             boolean NOT NULL DEFAULT true,
  role                text NOT NULL CHECK (role IN ('provider-admin', 'tenant-admin',
                        'backup-operator', 'restore-operator', 'viewer')),
  password_hash       text,
  epoch               bigint NOT NULL DEFAULT 1 CHECK (epoch >= 1),
  password_changed_at timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CHECK ((role = 'provider-admin') = (tenant_id IS NULL))
);
-- Usernames are unique per tenant (and among provider users), case-insensitively.
CREATE UNIQUE INDEX users_tenant_username
  ON users (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), lower(username));

CREATE TABLE api_tokens (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    uuid REFERENCES tenants (id) ON DELETE CASCADE,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  role         text NOT NULL CHECK (role IN ('provider-admin', 'tenant-admin',
                 'backup-operator', 'restore-operator', 'viewer')),
  token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  last_used_at timestamptz,
  revoked_at   timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- One row per refresh token. A login starts a family; each refresh marks its row used and
-- inserts the next one of the same family. Presenting a used token again (reuse) revokes
-- the whole family.
CREATE TABLE refresh_sessions (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  family_id      uuid NOT NULL,
  tenant_id      uuid REFERENCES tenants (id) ON DELETE CASCADE,
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash     text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  created_at     timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,
  used_at        timestamptz,
  revoked_at     timestamptz,
  source_address text
);
CREATE INDEX refresh_sessions_family ON refresh_sessions (family_id);
CREATE INDEX refresh_sessions_user ON refresh_sessions (user_id);

CREATE TABLE audit_log (
  id             bigserial PRIMARY KEY,
  at             timestamptz NOT NULL DEFAULT now(),
  tenant_id      uuid, -- the tenant the action concerned; NULL = provider level
  actor_id       uuid,
  actor_name     text,
  action         text NOT NULL,
  object_type    text,
  object_id      text,
  result         text NOT NULL CHECK (result IN ('ok', 'denied', 'failed')),
  source_address text,
  request_id     text,
  details        jsonb
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at DESC);
CREATE INDEX audit_log_at ON audit_log (at DESC);

-- Signing keys: the private key is stored wrapped with AES-256-GCM under the key-encryption
-- key given to auth in CAIRN_AUTH_KEK ("v1.<nonce>.<ciphertext>"), or "plain.<pem>" when no
-- KEK is configured (development only; auth warns at start-up).
CREATE TABLE signing_keys (
  kid         text PRIMARY KEY,
  wrapped_key text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  retired_at  timestamptz
);

-- identity.outbox is created before the migrations by the service runtime (OUTBOX_DDL).

-- ---- row-level security ----
-- Every transaction of the service sets (SET LOCAL through set_config(.., true)):
--   app.tenant_id       the caller's tenant (a uuid), or
--   app.provider_admin  'on' for a provider-admin, who sees every tenant;
--   app.login           'on' only while resolving credentials (login, refresh, API-token
--                       exchange): read-only access to look a tenant, user or token up.
-- Nothing set = nothing visible (fail closed).
CREATE FUNCTION rls_tenant_ok(t uuid) RETURNS boolean
  LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('app.provider_admin', true), '') = 'on'
        OR (t IS NOT NULL
            AND t = nullif(current_setting('app.tenant_id', true), '')::uuid)
  $$;
CREATE FUNCTION rls_login() RETURNS boolean
  LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('app.login', true), '') = 'on'
  $$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rw ON tenants USING (rls_tenant_ok(id)) WITH CHECK (rls_tenant_ok(id));
CREATE POLICY tenant_login ON tenants FOR SELECT USING (rls_login());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rw ON users USING (rls_tenant_ok(tenant_id))
  WITH CHECK (rls_tenant_ok(tenant_id));
CREATE POLICY tenant_login ON users FOR SELECT USING (rls_login());

ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rw ON api_tokens USING (rls_tenant_ok(tenant_id))
  WITH CHECK (rls_tenant_ok(tenant_id));
CREATE POLICY tenant_login ON api_tokens FOR SELECT USING (rls_login());

ALTER TABLE refresh_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rw ON refresh_sessions USING (rls_tenant_ok(tenant_id))
  WITH CHECK (rls_tenant_ok(tenant_id));
CREATE POLICY tenant_login ON refresh_sessions FOR SELECT USING (rls_login());

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rw ON audit_log USING (rls_tenant_ok(tenant_id))
  WITH CHECK (rls_tenant_ok(tenant_id));
-- A failed login is audited before anyone is authenticated.
CREATE POLICY login_insert ON audit_log FOR INSERT WITH CHECK (rls_login());

-- ---- the runtime role ----
-- cairn_auth_rt must exist before this runs where the migrating role may not create roles
-- (the local stack's bootstrap creates it and grants it to the owner `cairn`). Where the
-- migrating role may (a superuser, or CREATEROLE), it is created here.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn_auth_rt') THEN
    BEGIN
      CREATE ROLE cairn_auth_rt NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
        NOINHERIT;
      EXECUTE format('GRANT cairn_auth_rt TO %I', current_user);
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE WARNING 'role cairn_auth_rt is missing and % may not create it; see docs/auth.md',
        current_user;
    END;
  END IF;
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'cairn_auth_rt') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO cairn_auth_rt', current_schema());
    GRANT SELECT ON providers TO cairn_auth_rt;
    GRANT INSERT ON providers TO cairn_auth_rt;
    GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, users, api_tokens, refresh_sessions
      TO cairn_auth_rt;
    GRANT SELECT, INSERT ON audit_log TO cairn_auth_rt; -- append-only for the service
    GRANT SELECT, INSERT, UPDATE ON signing_keys TO cairn_auth_rt;
    GRANT SELECT, INSERT, UPDATE ON outbox TO cairn_auth_rt;
    GRANT USAGE ON SEQUENCE audit_log_id_seq, outbox_seq_seq TO cairn_auth_rt;
    GRANT EXECUTE ON FUNCTION rls_tenant_ok(uuid), rls_login() TO cairn_auth_rt;
  END IF;
END
$$;
