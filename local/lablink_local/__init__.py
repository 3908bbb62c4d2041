"""The local stack: the whole system on one machine, no AWS account (see `lablink local`)."""
