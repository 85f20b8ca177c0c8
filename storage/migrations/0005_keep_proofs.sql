-- Proof records outlive a careless tenant deletion: access requests (Art. 12(3) deadlines kept and met) and
-- consent withdrawals (Art. 7(3) honoured) must not vanish with a CASCADE. A tenant that has any is not
-- deleted until they are disposed of on their own terms.

ALTER TABLE access_requests DROP CONSTRAINT access_requests_tenant_id_fkey,
    ADD CONSTRAINT access_requests_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE RESTRICT;

ALTER TABLE consent_withdrawals DROP CONSTRAINT consent_withdrawals_tenant_id_fkey,
    ADD CONSTRAINT consent_withdrawals_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE RESTRICT;
