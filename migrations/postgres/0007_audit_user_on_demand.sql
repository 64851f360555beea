-- audit_user serves only auth_max_fail / auth_max_success, and it cost every login an index
-- insert at the user's place. A node whose configuration has such a policy builds it
-- (CONCURRENTLY) at start and at reload (store::login_index); no node drops it on its own.
DROP INDEX IF EXISTS audit_user;
