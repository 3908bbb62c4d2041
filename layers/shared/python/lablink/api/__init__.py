"""The REST API: one Powertools resolver per Lambda function (request, admin, metrics,
launch), the plumbing they share (http) and their request models (models)."""
