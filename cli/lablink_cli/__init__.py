"""The admin command line, `lablink ...`: above everything (it drives the layer, the local
stack and the listener, and talks to the REST API); nothing imports it."""
