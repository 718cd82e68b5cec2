"""Glue between functions-framework requests and the services; used by ``functions/*/main.py``."""
