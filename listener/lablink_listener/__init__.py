"""The LabLink listener: the long-poll service that client VMs wait on until they are assigned.

One asyncpg connection LISTENs on the configured channel; waiting requests are kept in
memory by hostname and woken by the notification of their own host. After every
(re)connect, and periodically, the rows of all waiters are read again, so an assignment
whose notification was missed is still delivered.
"""
