-- Version 3: stays kept at ingest. An admitted `in` pass carries `until`, the time of the same
-- person's next admitted pass at that place (NULL: none yet); what a stay overlaps is computed
-- at query time from it (src/trace.rs, Stay). The place index carries it, so the stays that
-- began at a place in a window are one index range.
ALTER TABLE passes ADD COLUMN until BIGINT;
DROP INDEX passes_place;
CREATE INDEX passes_place ON passes (checkpoint, ts) INCLUDE (subject, direction, admitted, event, until);

-- Each person's latest admitted pass at each place: the pass a new one links to, found by key
-- instead of by reading the person's passes in every day partition.
CREATE TABLE last_pass (
    subject INTEGER NOT NULL,
    checkpoint INTEGER NOT NULL,
    ts BIGINT NOT NULL,
    event BIGINT NOT NULL,
    received BIGINT NOT NULL,
    direction SMALLINT NOT NULL,
    PRIMARY KEY (subject, checkpoint)
);

UPDATE passes p SET until = n.next
FROM (
    SELECT received, subject, ts, event,
           lead(ts) OVER (PARTITION BY subject, checkpoint ORDER BY ts, event) AS next
    FROM passes WHERE admitted
) AS n
WHERE p.received = n.received AND p.subject = n.subject AND p.ts = n.ts AND p.event = n.event
  AND p.admitted AND p.direction = 0 AND n.next IS NOT NULL;

INSERT INTO last_pass (subject, checkpoint, ts, event, received, direction)
SELECT DISTINCT ON (subject, checkpoint) subject, checkpoint, ts, event, received, direction
FROM passes WHERE admitted
ORDER BY subject, checkpoint, ts DESC, event DESC;
