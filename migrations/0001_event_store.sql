-- The event store: the append-only log that is also the audit trail.
-- See docs/adr/0001-event-store-on-postgres.md and 0002-gap-free-horizon.md.

-- Roles (cluster-wide, created idempotently).
--   eventdesk_app    : what the API and the command path run as (SET ROLE after connecting).
--                      May INSERT and SELECT events; may never UPDATE/DELETE/TRUNCATE them.
DO $$
BEGIN
    CREATE ROLE eventdesk_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

CREATE TABLE events (
    global_position  bigint      GENERATED ALWAYS AS IDENTITY,
    transaction_id   xid8        NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id        uuid        NOT NULL,
    stream_type      text        NOT NULL,
    stream_id        uuid        NOT NULL,
    version          bigint      NOT NULL CHECK (version >= 1),
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    schema_version   integer     NOT NULL CHECK (schema_version >= 1),
    data             jsonb       NOT NULL,
    metadata         jsonb       NOT NULL,
    recorded_at      timestamptz NOT NULL,
    hash             bytea       NOT NULL CHECK (length(hash) = 32),
    -- The subscription order, and the key every position lookup uses. Readers only read below
    -- the horizon in this order (see docs/adr/0002-gap-free-horizon.md).
    CONSTRAINT events_pkey PRIMARY KEY (transaction_id, global_position),
    -- A second writer of the same version violates this key: SQLSTATE 23505 → Conflict.
    CONSTRAINT events_stream_version_key UNIQUE (tenant_id, stream_id, version)
);

-- Time-range audit queries: recorded_at grows with insertion order, so a BRIN index is tiny
-- and nearly free to maintain on the append path (a btree here cost ~8% of append throughput).
CREATE INDEX events_recorded_brin ON events USING brin (recorded_at);

COMMENT ON TABLE events IS
  'Append-only event log (the audit trail). UPDATE, DELETE and TRUNCATE are refused by trigger.';
COMMENT ON COLUMN events.hash IS
  'sha256(previous hash of the same stream (32 zero bytes for version 1) || version as 8 bytes big-endian || sha256(canonical bytes of this event))';

CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_no_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- Idempotency records, written in the same transaction as the events they guard.
CREATE TABLE idempotency_keys (
    tenant_id     uuid        NOT NULL,
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea       NOT NULL,
    result        jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Append: one round trip, one short transaction, one multi-row INSERT.
--
-- The caller passes the events' canonical digests (sha256 of the canonical bytes, computed by
-- the application, see store/src/hash.rs); this function chains them onto the stream head:
-- hash_i = sha256(hash_{i-1} || int8send(version_i) || digest_i).
--
-- p_expected: -1 = any, 0 = no stream, n > 0 = exactly n.
-- Errors (SQLSTATE, never message text, is what the application inspects):
--   23505 on events_stream_version_key : another writer got there first → Conflict
--   ED409                               : expected version does not match the head → Conflict
--   ED422                               : idempotency key reused with a different request
-- Returns the first position/version written, or the stored result of a replayed key
-- (replayed = true).
CREATE FUNCTION eventdesk_append(
    p_tenant          uuid,
    p_stream_type     text,
    p_stream_id       uuid,
    p_expected        bigint,
    p_event_ids       uuid[],
    p_event_types     text[],
    p_schema_versions integer[],
    p_data            jsonb[],
    p_metadata        jsonb[],
    p_recorded_at     timestamptz,
    p_digests         bytea[],
    p_idem_key        text,
    p_idem_hash       bytea,
    OUT replayed      boolean,
    OUT result        jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    v_head_version bigint;
    v_head_hash    bytea;
    v_hashes       bytea[];
    v_prev         bytea;
    v_n            integer := coalesce(array_length(p_event_ids, 1), 0);
    v_stored_hash  bytea;
    v_positions    bigint[];
    v_txid         xid8;
BEGIN
    replayed := false;
    IF p_idem_key IS NOT NULL THEN
        -- Claim the key. A concurrent holder makes us wait here until it commits.
        INSERT INTO idempotency_keys (tenant_id, key, request_hash, result)
        VALUES (p_tenant, p_idem_key, p_idem_hash, 'null'::jsonb)
        ON CONFLICT (tenant_id, key) DO NOTHING;
        IF NOT FOUND THEN
            SELECT request_hash, idempotency_keys.result INTO v_stored_hash, result
              FROM idempotency_keys WHERE tenant_id = p_tenant AND key = p_idem_key;
            IF v_stored_hash IS DISTINCT FROM p_idem_hash THEN
                RAISE EXCEPTION 'idempotency key reused with a different request'
                    USING ERRCODE = 'ED422';
            END IF;
            replayed := true;
            RETURN;
        END IF;
    END IF;

    SELECT e.version, e.hash INTO v_head_version, v_head_hash
      FROM events e
     WHERE e.tenant_id = p_tenant AND e.stream_id = p_stream_id
     ORDER BY e.version DESC LIMIT 1;
    v_head_version := coalesce(v_head_version, 0);

    IF p_expected >= 0 AND p_expected <> v_head_version THEN
        RAISE EXCEPTION 'expected version % but stream is at %', p_expected, v_head_version
            USING ERRCODE = 'ED409', DETAIL = v_head_version::text;
    END IF;

    v_prev := coalesce(v_head_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    v_hashes := ARRAY[]::bytea[];
    FOR i IN 1 .. v_n LOOP
        v_prev := sha256(v_prev || int8send(v_head_version + i) || p_digests[i]);
        v_hashes := v_hashes || v_prev;
    END LOOP;

    IF v_n > 0 THEN
        WITH ins AS (
            INSERT INTO events (tenant_id, stream_type, stream_id, version, event_id, event_type,
                                schema_version, data, metadata, recorded_at, hash)
            SELECT p_tenant, p_stream_type, p_stream_id, v_head_version + t.ord, t.event_id,
                   t.event_type, t.schema_version, t.data, t.metadata, p_recorded_at, t.hash
              FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_data, p_metadata, v_hashes)
                   WITH ORDINALITY AS t(event_id, event_type, schema_version, data, metadata, hash, ord)
            RETURNING global_position
        )
        SELECT array_agg(global_position ORDER BY global_position) INTO v_positions FROM ins;
    END IF;
    v_txid := pg_current_xact_id_if_assigned();

    result := jsonb_build_object(
        'stream_id', p_stream_id,
        'first_version', v_head_version + 1,
        'next_version', v_head_version + v_n,
        'first_position', v_positions[1],
        'last_position', v_positions[v_n],
        'transaction_id', v_txid::text,
        'count', v_n
    );
    IF p_idem_key IS NOT NULL THEN
        UPDATE idempotency_keys SET result = eventdesk_append.result
         WHERE tenant_id = p_tenant AND key = p_idem_key;
    END IF;
END $$;

-- Projector runtime state.
CREATE TABLE projection_checkpoints (
    name             text        NOT NULL,
    version          integer     NOT NULL,
    last_txid        xid8        NOT NULL DEFAULT '0'::xid8,
    last_position    bigint      NOT NULL DEFAULT 0,
    last_recorded_at timestamptz,
    events_processed bigint      NOT NULL DEFAULT 0,
    state            text        NOT NULL DEFAULT 'running'
                     CHECK (state IN ('running', 'degraded', 'rebuilding', 'stopped')),
    last_error       text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

CREATE TABLE projection_dead_letters (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection       text        NOT NULL,
    projection_version integer   NOT NULL,
    tenant_id        uuid        NOT NULL,
    global_position  bigint      NOT NULL,
    transaction_id   xid8        NOT NULL,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    error            text        NOT NULL,
    attempts         integer     NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    UNIQUE (projection, projection_version, event_id)
);

GRANT SELECT, INSERT ON events TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE ON idempotency_keys TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE ON projection_checkpoints TO eventdesk_app;
GRANT SELECT, INSERT, UPDATE ON projection_dead_letters TO eventdesk_app;
GRANT EXECUTE ON FUNCTION eventdesk_append TO eventdesk_app;
