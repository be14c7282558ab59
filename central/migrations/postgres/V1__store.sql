-- Central's store on PostgreSQL, version 1. The layout is described in src/store/postgres.rs.
-- Never edit a migration that has shipped: add V2__... instead.

CREATE TABLE sites (id SERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE boxes (id SERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE subjects (id SERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE checkpoints (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    directions SMALLINT NOT NULL DEFAULT 0
);

-- Events, partitioned by the day central received them (Unix ms): retention drops whole days.
-- Central creates the partitions ahead; what falls outside them lands in events_default.
CREATE SEQUENCE events_pk;
CREATE TABLE events (
    received BIGINT NOT NULL,
    pk BIGINT NOT NULL DEFAULT nextval('events_pk'),
    ts BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    box INTEGER NOT NULL,
    site INTEGER NOT NULL,
    checkpoint INTEGER NOT NULL,
    subject INTEGER,
    ts_ns INTEGER,
    flags INTEGER NOT NULL,
    direction SMALLINT NOT NULL,
    method SMALLINT NOT NULL,
    pass_status SMALLINT,
    decision SMALLINT NOT NULL,
    reason SMALLINT NOT NULL,
    clock_synced BOOLEAN NOT NULL,
    temperature REAL,
    id BYTEA NOT NULL,
    dependants TEXT
) PARTITION BY RANGE (received);
CREATE INDEX events_box_seq ON events (box, seq);
CREATE INDEX events_id ON events (id);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_place ON events (checkpoint, ts);
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- One row per person an event names (holder and dependants), partitioned like events.
CREATE TABLE passes (
    received BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    event BIGINT NOT NULL,
    subject INTEGER NOT NULL,
    checkpoint INTEGER NOT NULL,
    direction SMALLINT NOT NULL,
    admitted BOOLEAN NOT NULL
) PARTITION BY RANGE (received);
CREATE INDEX passes_person ON passes (subject, ts) INCLUDE (checkpoint, direction, admitted, event);
CREATE INDEX passes_place ON passes (checkpoint, ts) INCLUDE (subject, direction, admitted, event);
CREATE TABLE passes_default PARTITION OF passes DEFAULT;

CREATE TABLE conflicts (id BYTEA PRIMARY KEY, received BIGINT NOT NULL, record TEXT NOT NULL);
CREATE TABLE sequences (box TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE readings (event BIGINT PRIMARY KEY, box INTEGER NOT NULL, seq BIGINT NOT NULL);
CREATE INDEX readings_box_seq ON readings (box, seq);
CREATE TABLE revocations (subject TEXT PRIMARY KEY, issued_before BIGINT NOT NULL);
CREATE TABLE people (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    name TEXT NOT NULL,
    department TEXT NOT NULL,
    class TEXT NOT NULL,
    counsellor TEXT NOT NULL,
    department_head TEXT NOT NULL,
    wecom_id TEXT NOT NULL,
    email TEXT NOT NULL
);
CREATE TABLE places (
    checkpoint TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    building TEXT NOT NULL,
    capacity BIGINT,
    manager TEXT NOT NULL
);
CREATE TABLE docs (
    kind SMALLINT NOT NULL,
    key TEXT NOT NULL,
    ord BIGINT NOT NULL,
    time_ms BIGINT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX docs_ord ON docs (kind, ord);
