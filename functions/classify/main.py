"""classify: Pub/Sub (posts topic) -> incident stored in Firestore -> incidents topic."""

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap


@functions_framework.cloud_event
def classify(event: CloudEvent) -> None:
    # Returning normally acknowledges; raising asks Pub/Sub to redeliver (only transient errors raise).
    bootstrap.on_post_fetched(event["id"], event["type"], event.data)
