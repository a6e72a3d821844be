-- Users, and the tokens issued to them, may be limited to some enterprise projects like keys are
-- (a JSON array; empty: every enterprise project of the user's project).
ALTER TABLE users ADD COLUMN enterprise_project_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tokens ADD COLUMN enterprise_project_ids TEXT NOT NULL DEFAULT '[]';
