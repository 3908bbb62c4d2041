"""The CDK constructs and stacks of the LabLink deployment (composed by app.py)."""
