-- Several nodes share one catalogue. Each recording names the node that records it, so a node restarting after a
-- crash recovers its own unfinished recordings and never a call another node is still recording. Rows from
-- before this column (NULL) belong to whichever node recovers them first: there was only one node then.
ALTER TABLE recordings ADD COLUMN node text;
CREATE INDEX recordings_unfinished_by_node ON recordings (node) WHERE status = 'recording';

-- The nodes of a deployment: registered at start, seen at every heartbeat, with what an operator needs to plan a
-- rolling restart (draining, active calls). Nothing here steers calls: the SIP dispatcher in front does that.
CREATE TABLE nodes (
    name text PRIMARY KEY CONSTRAINT nodes_name_format CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    version text NOT NULL,
    sip_address text NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at timestamptz NOT NULL,
    draining boolean NOT NULL DEFAULT false,
    active_calls integer NOT NULL DEFAULT 0 CHECK (active_calls >= 0),
    stopped_at timestamptz
);
