-- user-engine PostgreSQL schema, version 4: taking a lease on an outbox event writes no
-- index entry.
--
-- Applied by the owner (migration) role, like 0001. Never edit this file once released.
--
-- A claim sets lease_token and lease_expires_at on every event it hands out. Version 1 had
-- lease_token in the predicate of outbox_events_may_block, so each of those updates wrote a
-- new copy of the row elsewhere and a new entry in each of the table's four indexes, and the
-- acknowledgement that followed left both copies and all eight entries to vacuum. Claims
-- walking the pending index also stepped over the dead entries of the rows leased before.
--
-- With no index depending on the lease columns, and room left on each page for a new copy of
-- every row (fillfactor 45: a copy also needs a line pointer, so half the page is not quite
-- enough; outbox rows are short-lived, so the table stays small), the lease update is a HOT
-- update: the new copy stays on its page, no index changes, and the old copy is pruned with
-- the page. The claim now finds the aggregates a lease or a retry blocks through the
-- aggregate's first pending event, one probe of outbox_events_pending_by_aggregate (see the
-- store's claim_events).
--
-- The fillfactor applies to pages filled from now on; rows already stored stay where they
-- are (the outbox drains, and its pages are refilled at the new setting).

ALTER TABLE user_engine.outbox_events SET (fillfactor = 45);

DROP INDEX user_engine.outbox_events_may_block;
