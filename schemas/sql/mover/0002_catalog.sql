-- The catalog: repositories, backup tasks, restore points, their disks, the guest file
-- index and the tenants' wrapped data keys. Owned by the mover.

-- A repository the provider defined. kind 'local' = a directory on the mover's host.
CREATE TABLE repositories (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  kind text NOT NULL DEFAULT 'local' CHECK (kind IN ('local')),
  path text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());

-- One data key set per tenant, wrapped under the provider's master key (never plaintext).
CREATE TABLE tenant_keys (
  tenant_id text PRIMARY KEY,
  wrapped bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());

-- A backup task as received on cairn.backup. The same task delivered twice is one row.
-- state: queued -> running -> success | warning | failed | stopped.
-- A running task holds a lease its worker renews; an expired lease (the mover died) makes
-- the task claimable again, and the retry reuses the chunks already stored.
CREATE TABLE tasks (
  task_id uuid PRIMARY KEY,
  session_id uuid NOT NULL,
  job_id uuid,
  tenant_id text NOT NULL,
  vm_id text NOT NULL,
  repository_id uuid NOT NULL,
  mode text NOT NULL CHECK (mode IN ('incremental', 'full')),
  options jsonb NOT NULL DEFAULT '{}',
  state text NOT NULL DEFAULT 'queued'
    CHECK (state IN ('queued', 'running', 'success', 'warning', 'failed', 'stopped')),
  stop_requested boolean NOT NULL DEFAULT false,
  attempts integer NOT NULL DEFAULT 0,
  owner text,
  lease_until timestamptz,
  snapshot_id text,
  snapshot_locator text,
  restore_point_id text,
  error_code text,
  error_message text,
  figures jsonb,
  received_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz);
CREATE INDEX tasks_claimable ON tasks (received_at) WHERE state IN ('queued', 'running');
CREATE INDEX tasks_tenant_running ON tasks (tenant_id) WHERE state = 'running';

-- A restore point: visible (a row here) only once every chunk and the manifest are durable.
CREATE TABLE restore_points (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  repository_id uuid NOT NULL REFERENCES repositories (id),
  vm_id text NOT NULL,
  vm_name text NOT NULL,
  task_id uuid NOT NULL UNIQUE REFERENCES tasks (task_id),
  parent_id text REFERENCES restore_points (id),
  mode text NOT NULL,
  bytes_total bigint NOT NULL,
  bytes_read bigint NOT NULL,
  bytes_stored bigint NOT NULL,
  chunks_total bigint NOT NULL,
  chunks_new bigint NOT NULL,
  indexed boolean NOT NULL DEFAULT false,
  files_indexed bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX restore_points_vm ON restore_points (tenant_id, vm_id, created_at DESC);

CREATE TABLE restore_point_disks (
  restore_point_id text NOT NULL REFERENCES restore_points (id) ON DELETE CASCADE,
  disk_name text NOT NULL,
  size_bytes bigint NOT NULL,
  change_id text,
  PRIMARY KEY (restore_point_id, disk_name));

-- The guest file index, written with COPY per restore point.
CREATE TABLE file_index (
  restore_point_id text NOT NULL REFERENCES restore_points (id) ON DELETE CASCADE,
  tenant_id text NOT NULL,
  disk_name text NOT NULL,
  partition integer NOT NULL,
  path text NOT NULL,
  size bigint NOT NULL,
  mtime timestamptz,
  type text NOT NULL,
  inode bigint NOT NULL);
CREATE INDEX file_index_rp ON file_index (restore_point_id);
CREATE INDEX file_index_tenant_path ON file_index (tenant_id, path text_pattern_ops);
