-- Version 2: stays kept at ingest. An admitted `in` pass carries `until`, the time of the same
-- person's next admitted pass at that place (NULL: none yet); what a stay overlaps is computed
-- at query time from it (src/trace.rs, Stay). The place index carries it, so that the stays
-- that began at a place in a window are one index range.
ALTER TABLE passes ADD COLUMN until INTEGER;
DROP INDEX passes_place;
CREATE INDEX passes_place ON passes (checkpoint, ts, subject, direction, admitted, until);
UPDATE passes SET until = n.next
FROM (
    SELECT subject, ts, event,
           lead(ts) OVER (PARTITION BY subject, checkpoint ORDER BY ts, event) AS next
    FROM passes WHERE admitted
) AS n
WHERE passes.subject = n.subject AND passes.ts = n.ts AND passes.event = n.event
  AND passes.admitted AND passes.direction = 0 AND n.next IS NOT NULL;
