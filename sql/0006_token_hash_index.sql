-- The authorizer finds a VM by the hash of the bearer token it presents: one index lookup,
-- and no two VMs can ever share a token.
CREATE UNIQUE INDEX {vm_token_index} ON {vm_table} (token_hash) WHERE token_hash IS NOT NULL;
