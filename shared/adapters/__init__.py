"""Adapters: the ports implemented on Firestore, Pub/Sub, HTTP (httpx) and SMTP."""
