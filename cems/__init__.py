"""The ``cems`` command and the local infrastructure harness."""
