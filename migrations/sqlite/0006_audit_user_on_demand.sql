-- audit_user serves only auth_max_fail / auth_max_success, and it cost every login an index
-- insert at the user's place (at 100,000 users, most of the cost of the larger token store).
-- The serving daemon now builds it while its configuration has such a policy and drops it
-- otherwise (store::login_index).
DROP INDEX IF EXISTS audit_user;
