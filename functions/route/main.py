"""route: Pub/Sub (incidents topic) -> responsible departments notified by webhook / e-mail."""

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap


@functions_framework.cloud_event
def route(event: CloudEvent) -> None:
    # Returning normally acknowledges; raising asks Pub/Sub to redeliver (only transient errors raise).
    bootstrap.on_incident_classified(event["id"], event["type"], event.data)
