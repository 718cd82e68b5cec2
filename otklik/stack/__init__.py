"""The local stack: everything ``make run``, ``make dev`` and the e2e tests start on one machine."""
