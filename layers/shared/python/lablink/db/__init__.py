"""The data layer: every SQL statement of LabLink, split by concern. The ``Database`` facade
(lablink.db.database) holds one connection and a repository per concern; this package's
root imports nothing, so the listener can use ``listener_sql`` without psycopg2's driver."""
