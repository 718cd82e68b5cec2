# Firestore: the composite index a query of the code needs, and the TTL policies that delete expired markers.
# The database itself is created once with gcloud (README.md); these act on local.firestore_database, the one
# the functions use (settings.firestore_database, "(default)" when unset).

# FirestoreIncidents.due_for_reply (shared/adapters/firestore.py), the query of remind:
#   status IN [new, routed, acknowledged] AND overdue == false AND reply_due_at <= now ORDER BY reply_due_at
# The equality and IN fields come first, then the range field with the order of the order_by. Firestore adds
# __name__ as the last field itself.
resource "google_firestore_index" "incidents_due_for_reply" {
  project     = var.project_id
  database    = local.firestore_database
  collection  = "incidents"
  query_scope = "COLLECTION"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }
  fields {
    field_path = "overdue"
    order      = "ASCENDING"
  }
  fields {
    field_path = "reply_due_at"
    order      = "ASCENDING"
  }

  depends_on = [google_project_service.this]
}

# Markers of what was already handled (FirestoreMarkers): published_posts (posts published by any path, kept
# 60 days) and vk_callback_events (Callback API events, kept 7 days). Each document carries expire_at; a TTL
# policy on it lets Firestore delete the document after that time (typically within 24 hours of it). Nothing
# queries expire_at, so its single-field indexes are switched off (index_config {}): an index on a timestamp
# only costs writes and, as Firestore's TTL page warns, can create hotspots at high write rates.
resource "google_firestore_field" "marker_expire_at" {
  for_each   = toset(["published_posts", "vk_callback_events"])
  project    = var.project_id
  database   = local.firestore_database
  collection = each.key
  field      = "expire_at"

  ttl_config {}
  index_config {}

  depends_on = [google_project_service.this]
}
