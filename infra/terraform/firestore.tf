# Firestore: the composite index a query of the code needs, and the TTL policies that delete expired markers.
# The database itself is created once with gcloud (README.md); these act on local.firestore_database, the one
# the functions use (settings.firestore_database, "(default)" when unset).

# The queries of remind (shared/adapters/firestore.py, FirestoreIncidents):
#   due_for_check:     next_check_at <= now ORDER BY next_check_at — one field: Firestore's automatic
#                      single-field index serves it, no composite index;
#   undelivered_since: undelivered == true AND routed_at <= t ORDER BY routed_at — this composite index.
# The equality field comes first, then the range field with the order of the order_by. Firestore adds
# __name__ as the last field itself. tests/unit/test_terraform.py keeps the two in step.
resource "google_firestore_index" "incidents_undelivered" {
  project     = var.project_id
  database    = local.firestore_database
  collection  = "incidents"
  query_scope = "COLLECTION"

  fields {
    field_path = "undelivered"
    order      = "ASCENDING"
  }
  fields {
    field_path = "routed_at"
    order      = "ASCENDING"
  }

  depends_on = [google_project_service.this]
}

# digest (FirestoreIncidents.open_incidents): status IN [routed, acknowledged, answered] AND created_at > t
# ORDER BY created_at.
resource "google_firestore_index" "incidents_open" {
  project     = var.project_id
  database    = local.firestore_database
  collection  = "incidents"
  query_scope = "COLLECTION"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }
  fields {
    field_path = "created_at"
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
