"""The pool autopilot (issue 13): the policy an admin sets, and the reconciler that makes the
fleet follow it (``lablink.pool.reconciler.reconcile``)."""
