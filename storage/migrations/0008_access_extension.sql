-- Access requests (GDPR Art. 12(3)): the deadline extended by up to two further months, with the reason told to
-- the person, and when a case was closed.
ALTER TABLE access_requests
    ADD COLUMN extended_at timestamptz,
    ADD COLUMN extension_reason text,
    ADD COLUMN closed_at timestamptz,
    ADD CONSTRAINT access_requests_extension_explained
        CHECK ((extended_at IS NULL) = (extension_reason IS NULL));
