-- Every event seen on the platform, counted per day, tenant and type. Filled exactly once
-- per event by the stats consumer; analysts read it through stats.v_event_counts.
CREATE TABLE event_counts (
  day date NOT NULL,
  tenant_id text NOT NULL DEFAULT '',
  type text NOT NULL,
  count bigint NOT NULL DEFAULT 0,
  last_event_at timestamptz NOT NULL,
  PRIMARY KEY (day, tenant_id, type));

CREATE VIEW v_event_counts AS
  SELECT day, NULLIF(tenant_id, '') AS tenant_id, type, count, last_event_at FROM event_counts;
