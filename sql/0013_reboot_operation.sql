-- An admin's reboot of one VM (POST /api/vms/HOST/reboot) is an operation like a launch
-- or a destroy: the provisioning step makes the EC2 call, and its outcome is read back the same way.
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN ('launch', 'destroy', 'reboot'));
