# Firestore: the database, its backups, the composite indexes the code's queries need, and the TTL policies that
# delete expired markers. All act on local.firestore_database, the one the functions use
# (settings.firestore_database, "(default)" when unset).

# Native mode, in var.region unless firestore.location says otherwise. A project may have its "(default)"
# database already (made in the console or by App Engine): then import it once (README.md, "Firestore") or set
# firestore.create_database = false, and the indexes and TTL policies below apply to it as it is.
resource "google_firestore_database" "this" {
  count       = var.firestore.create_database ? 1 : 0
  project     = var.project_id
  name        = local.firestore_database
  location_id = coalesce(var.firestore.location, var.region)
  type        = "FIRESTORE_NATIVE"
  # Pessimistic: remind's and department_api's transactions lock what they read, which is what their
  # "sent once" and "answered once" checks rely on (the server library's default for Native mode too).
  concurrency_mode            = "PESSIMISTIC"
  app_engine_integration_mode = "DISABLED"
  # Seven days of point-in-time recovery: an operator's mistake (a bad `make seed`, a wrong bulk correction)
  # can be read back as of any minute of the last week.
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  # The incidents are the government's record of what residents asked and what it answered: neither a
  # `terraform destroy` nor a click in the console deletes them. Deleting the database takes switching
  # protection off first, on purpose, and `terraform destroy` only forgets it (ABANDON).
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"

  depends_on = [google_project_service.this]
}

# Beyond point-in-time recovery's week: a weekly backup kept 14 weeks (the longest Firestore allows for a
# weekly schedule; a daily one keeps at most 7 days, which PITR already covers). Restore with
# `gcloud firestore databases restore` into a new database (README.md).
resource "google_firestore_backup_schedule" "weekly" {
  count    = var.firestore.weekly_backup ? 1 : 0
  project  = var.project_id
  database = local.firestore_database

  retention = "8467200s" # 14 weeks
  weekly_recurrence {
    day = "SUNDAY"
  }

  depends_on = [google_firestore_database.this]
}

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

  depends_on = [google_project_service.this, google_firestore_database.this]
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

  depends_on = [google_project_service.this, google_firestore_database.this]
}

# classify's grouping (FirestoreIncidents.group_candidates): group_keys ARRAY_CONTAINS_ANY [...] AND
# last_post_at >= t ORDER BY last_post_at DESC — the array field with array_config, then the range field.
resource "google_firestore_index" "incidents_group" {
  project     = var.project_id
  database    = local.firestore_database
  collection  = "incidents"
  query_scope = "COLLECTION"

  fields {
    field_path   = "group_keys"
    array_config = "CONTAINS"
  }
  fields {
    field_path = "last_post_at"
    order      = "DESCENDING"
  }

  depends_on = [google_project_service.this, google_firestore_database.this]
}

# route's check for twins (FirestoreIncidents.group_stored_since): group_keys ARRAY_CONTAINS_ANY [...] AND
# created_at >= t ORDER BY created_at — incidents about the same problem stored moments apart.
resource "google_firestore_index" "incidents_group_stored" {
  project     = var.project_id
  database    = local.firestore_database
  collection  = "incidents"
  query_scope = "COLLECTION"

  fields {
    field_path   = "group_keys"
    array_config = "CONTAINS"
  }
  fields {
    field_path = "created_at"
    order      = "ASCENDING"
  }

  depends_on = [google_project_service.this, google_firestore_database.this]
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

  depends_on = [google_project_service.this, google_firestore_database.this]
}
