"""LabLink shared package: configuration, domain models, data access and auth, used by every
Lambda function, the listener, the CLI and the local stack."""
