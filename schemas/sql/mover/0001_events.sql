-- mover (schema catalog): the event plumbing every service has.
-- outbox: events written in the service's own transactions, published in order by the
-- relay (libs/common/src/outbox.c); applied_events: ids of consumed events already
-- applied, so a redelivered event is skipped (libs/common/src/kafka_consumer.c).
CREATE TABLE IF NOT EXISTS outbox (
  seq bigserial PRIMARY KEY,
  id uuid NOT NULL,
  topic text NOT NULL,
  key text,
  type text NOT NULL,
  source text NOT NULL,
  subject text,
  tenant_id text,
  data jsonb,
  headers jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;

CREATE TABLE IF NOT EXISTS applied_events (
  consumer_group text NOT NULL,
  event_id uuid NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, event_id));
