-- Tenant checkpoints (issue #6, ADR 0010): a digest of a tenant's whole log up to a point of
-- the reading order, chained to the tenant's previous checkpoint. Publishing a digest outside
-- the database lets an auditor prove later that nothing before it changed, even by a superuser
-- who rewrites a stream and recomputes its hash chain.
--
-- A checkpoint covers exactly the tenant's events with
--     (transaction_id, global_position) <= (txid, position)
-- i.e. what the store's `read_all` had delivered when it was taken (below the xid8 horizon, so
-- that set can never grow later). `digest` is
--     sha256("eventdesk/tenant-checkpoint/v1" || tenant_id || be_i64(txid) || be_i64(position)
--            || previous_digest
--            || for each stream in stream_id order: stream_id || be_i64(last version) || last hash
--            || be_i64(stream_count) || be_i64(event_count))
-- (store/src/checkpoint.rs). `previous_digest` is the digest of the tenant's previous
-- checkpoint in (txid, position) order, 32 zero bytes for the first.

CREATE TABLE tenant_checkpoints (
    tenant_id        uuid        NOT NULL,
    position         bigint      NOT NULL,
    txid             xid8        NOT NULL,
    stream_count     bigint      NOT NULL CHECK (stream_count >= 0),
    event_count      bigint      NOT NULL CHECK (event_count >= 0),
    digest           bytea       NOT NULL CHECK (length(digest) = 32),
    previous_digest  bytea       NOT NULL CHECK (length(previous_digest) = 32),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, position)
);

COMMENT ON TABLE tenant_checkpoints IS
  'Insert-only, chained digests of each tenant''s event log (ADR 0010). UPDATE, DELETE and TRUNCATE are refused by trigger.';

CREATE FUNCTION tenant_checkpoints_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tenant checkpoints are immutable: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER tenant_checkpoints_no_update_delete
    BEFORE UPDATE OR DELETE ON tenant_checkpoints
    FOR EACH ROW EXECUTE FUNCTION tenant_checkpoints_refuse_change();
CREATE TRIGGER tenant_checkpoints_no_truncate
    BEFORE TRUNCATE ON tenant_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_checkpoints_refuse_change();

GRANT SELECT, INSERT ON tenant_checkpoints TO eventdesk_system;
