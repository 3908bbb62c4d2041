"""The LabLink client agent: runs on each client VM's host (stdlib only, Python 3.8+).

It reports the container phase of the startup timings and `running`, long-polls the
listener until the VM is assigned, starts Chrome Remote Desktop in the researcher's
container, and keeps reporting GPU health and whether the subject software is in use.
"""
