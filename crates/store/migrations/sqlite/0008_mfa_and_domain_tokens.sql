-- Virtual MFA: a user's TOTP secret (sealed with the master key, like access-key secrets; NULL:
-- no device) and the last step whose code was used (each code is accepted once).
ALTER TABLE users ADD COLUMN totp_secret BLOB;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
-- A token scoped to its user's domain (`auth.scope.domain`) rather than to a project: the admin API
-- and the IAM listings, no project's jobs.
ALTER TABLE tokens ADD COLUMN domain_scoped INTEGER NOT NULL DEFAULT 0;
