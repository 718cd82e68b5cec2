"""Code shared by every Otklik function.

``domain``, ``services``, ``classifier``, ``contracts`` and ``ports`` are pure Python (no Google Cloud imports), so
they run in unit tests with in-memory fakes. ``adapters`` hold the Firestore, Pub/Sub, HTTP and SMTP code behind the
ports; ``bootstrap`` is the composition root that wires them from configuration, lazily, once per instance.
"""
