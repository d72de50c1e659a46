-- Side effects of the integration tests' handler. Deliberately NOT unique on event_id:
-- a duplicate application would show up as an extra row.
CREATE TABLE applied (
  event_id uuid NOT NULL,
  k text,
  n integer,
  applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE counter (id integer PRIMARY KEY, c bigint NOT NULL);
INSERT INTO counter VALUES (1, 0);
-- Per-key order check: events of one key must arrive with increasing n.
CREATE TABLE order_violations (event_id uuid, k text, n integer, prev integer);
