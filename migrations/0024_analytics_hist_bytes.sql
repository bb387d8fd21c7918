-- Duration histograms are stored as bytes (ADR 0027): `rm_analytics_hist.hist` holds bin i's
-- count as the i-th unsigned LEB128 varint, trailing zero bins not stored
-- (projections/src/analytics.rs, `encode_hist`). PostgreSQL sends a bytea as it is stored,
-- where an integer[] costs a send-function call per element (~15 µs per 400-bin row, the
-- largest part of a 180-day median request at a million incidents). The projection merges a
-- batch into the stored rows itself (read under lock, added, written back), so the SQL merge
-- function goes.

-- The stored encoding of a histogram array, for the conversion below. Kept (and tested
-- against the Rust encoder, tests/it/http/analytics.rs) so that it cannot drift.
CREATE FUNCTION eventdesk_hist_encode(h integer[]) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    out  bytea := '\x'::bytea;
    last integer := 0;
    x    bigint;
BEGIN
    FOR i IN REVERSE coalesce(array_upper(h, 1), 0) .. coalesce(array_lower(h, 1), 1) LOOP
        IF coalesce(h[i], 0) > 0 THEN
            last := i;
            EXIT;
        END IF;
    END LOOP;
    FOR i IN coalesce(array_lower(h, 1), 1) .. last LOOP
        x := greatest(coalesce(h[i], 0), 0);
        WHILE x >= 128 LOOP
            out := out || set_byte('\x00'::bytea, 0, ((x & 127) | 128)::integer);
            x := x >> 7;
        END LOOP;
        out := out || set_byte('\x00'::bytea, 0, x::integer);
    END LOOP;
    RETURN out;
END
$$;

ALTER TABLE rm_analytics_hist
    ALTER COLUMN hist TYPE bytea USING eventdesk_hist_encode(hist);

DROP FUNCTION eventdesk_hist_add(integer[], integer[]);

-- A rebuild of the analytics projection that was interrupted before this migration has shadow
-- tables of the old shape: it starts again from zero.
DROP SCHEMA IF EXISTS rebuild_analytics CASCADE;
DELETE FROM projection_rebuilds WHERE name = 'analytics';
