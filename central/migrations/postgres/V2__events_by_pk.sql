-- Trajectories join a person's passes to their events by the event's pk, and readings name
-- events by pk: without this index each such join read every event of the partition.
CREATE INDEX events_pk_idx ON events (pk);
