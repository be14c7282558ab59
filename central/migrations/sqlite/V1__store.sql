-- Central's store on SQLite, version 1. The layout is described in src/store/sqlite.rs.
-- Never edit a migration that has shipped: add V2__... instead.

-- Names, interned: events and passes refer to them by number.
CREATE TABLE sites (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE boxes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE subjects (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
-- `directions`: bit 0 once an `in` was stored there, bit 1 an `out` (two-way places make stays).
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    directions INTEGER NOT NULL DEFAULT 0
);

-- One row per event as the box sent it. Enumerations are the codes of src/store/codes.rs.
CREATE TABLE events (
    pk INTEGER PRIMARY KEY,
    id BLOB NOT NULL,                 -- the event's UUID, 16 bytes
    box INTEGER NOT NULL,             -- boxes.id
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,              -- event time by the box's clock, Unix ms
    ts_ns INTEGER,                    -- nanoseconds within that ms, NULL when 0
    received INTEGER NOT NULL,        -- when central stored it, Unix ms (retention keys on it)
    site INTEGER NOT NULL,            -- sites.id
    checkpoint INTEGER NOT NULL,      -- checkpoints.id
    direction INTEGER NOT NULL,
    method INTEGER NOT NULL,
    subject INTEGER,                  -- subjects.id of the holder, NULL when unknown
    dependants TEXT,                  -- people admitted on the holder's code, comma-separated
    pass_status INTEGER,
    decision INTEGER NOT NULL,
    reason INTEGER NOT NULL,
    flags INTEGER NOT NULL,           -- bit set of codes.rs FLAGS
    temperature REAL,
    clock_synced INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_id ON events (id);
CREATE UNIQUE INDEX events_box_seq ON events (box, seq);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_place ON events (checkpoint, ts);

-- One row per person an event names: the holder and each dependant. What tracing reads.
CREATE TABLE passes (
    subject INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    event INTEGER NOT NULL,           -- events.pk
    checkpoint INTEGER NOT NULL,
    direction INTEGER NOT NULL,
    admitted INTEGER NOT NULL,
    PRIMARY KEY (subject, ts, event)
) WITHOUT ROWID;
CREATE INDEX passes_place ON passes (checkpoint, ts, subject, direction, admitted);

-- An event whose (box, seq) is held by another id: kept apart, never stored over the other.
CREATE TABLE conflicts (
    id BLOB PRIMARY KEY,
    received INTEGER NOT NULL,
    record TEXT NOT NULL              -- the event as JSON
);

-- What central holds of each box's sequence (SeqState as JSON).
CREATE TABLE sequences (box TEXT PRIMARY KEY, state TEXT NOT NULL);

-- Events with a temperature whose alerts the engine has not handled yet.
CREATE TABLE readings (event INTEGER PRIMARY KEY);

CREATE TABLE revocations (subject TEXT PRIMARY KEY, issued_before INTEGER NOT NULL);

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
    capacity INTEGER,
    manager TEXT NOT NULL
);

-- Documents other modules own, as their JSON (store::Docs: 0 notification log, 1 deliveries
-- waiting for a retry, 2 active alerts). `ord` orders them; `time_ms` is what retention reads.
CREATE TABLE docs (
    kind INTEGER NOT NULL,
    key TEXT NOT NULL,
    ord INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX docs_ord ON docs (kind, ord);
