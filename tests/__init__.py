"""The test suite. A package so that the proof's programs, run as modules from the repository
root (`python -m tests.reliability.soak`), import their helpers by name (tests.support.*)."""
