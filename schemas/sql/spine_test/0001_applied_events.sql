-- The consumer dedupe table (KAFKA_APPLIED_EVENTS_DDL in common/kafka.h), applied with
-- search_path set to the consumer's schema by db_migrate.
CREATE TABLE IF NOT EXISTS applied_events (
  consumer_group text NOT NULL,
  event_id uuid NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, event_id));
