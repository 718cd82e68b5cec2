# ---------------------------------------------------------------------------------------------------------
# Source: build/functions/<name> (made by `make build`) zipped and uploaded under its content hash.
# ---------------------------------------------------------------------------------------------------------

data "archive_file" "source" {
  for_each    = local.functions
  type        = "zip"
  source_dir  = "${local.source_dir}/${each.key}"
  output_path = "${local.dist_dir}/${each.key}.zip"
  # The same tree gives the same zip on every machine, so the hash (and the object name) only changes with
  # the code.
  output_file_mode = "0644"
}

resource "google_storage_bucket_object" "source" {
  for_each     = local.functions
  name         = "${each.key}/${data.archive_file.source[each.key].output_md5}.zip"
  bucket       = google_storage_bucket.sources.name
  source       = data.archive_file.source[each.key].output_path
  content_type = "application/zip"
}

# ---------------------------------------------------------------------------------------------------------
# Identities: one runtime service account per function, plus the callers and the builder.
# ---------------------------------------------------------------------------------------------------------

resource "google_service_account" "function" {
  for_each     = local.functions
  account_id   = "otklik-${each.key}"
  display_name = "Otklik ${each.key} function (runtime)"

  depends_on = [google_project_service.this]
}

# Identity with which Eventarc pushes Pub/Sub events to classify and route.
resource "google_service_account" "eventarc" {
  account_id   = "otklik-eventarc"
  display_name = "Otklik Eventarc triggers (invokes the Pub/Sub-triggered functions)"

  depends_on = [google_project_service.this]
}

# Identity with which Cloud Scheduler calls ingest and remind (OIDC token).
resource "google_service_account" "scheduler" {
  account_id   = "otklik-scheduler"
  display_name = "Otklik Cloud Scheduler (invokes ingest and remind)"

  depends_on = [google_project_service.this]
}

# Cloud Build runs the function builds as this account rather than the project's default compute account,
# which in new projects has no roles at all (and in old ones has Editor).
resource "google_service_account" "build" {
  account_id   = "otklik-build"
  display_name = "Otklik function builds (Cloud Build)"

  depends_on = [google_project_service.this]
}

# Cloud Run Builder: the predefined role Google documents for a custom build account of Cloud Run functions
# (read the staged source, write build logs, push the image to Artifact Registry).
resource "google_project_iam_member" "build" {
  project = var.project_id
  role    = "roles/run.builder"
  member  = "serviceAccount:${google_service_account.build.email}"
}

# ---------------------------------------------------------------------------------------------------------
# Least-privilege grants of the runtime accounts.
# ---------------------------------------------------------------------------------------------------------

# Firestore has no finer IAM resource than the project.
resource "google_project_iam_member" "datastore_user" {
  for_each = local.firestore_functions
  project  = var.project_id
  role     = "roles/datastore.user"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

# Each function publishes to the one topic topology.json says it publishes to (published_by): ingest to
# posts, classify to incidents. On the topic, not the project.
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.topics_by_key
  topic    = google_pubsub_topic.this[each.value.name].name
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.function[each.value.published_by].email}"
}

data "google_secret_manager_secret" "this" {
  for_each  = toset([for b in values(local.secret_bindings) : b.secret])
  secret_id = each.key
}

# Each secret is readable by the function that needs it only (the VK token by ingest).
resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each  = local.secret_bindings
  secret_id = data.google_secret_manager_secret.this[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

# ---------------------------------------------------------------------------------------------------------
# The functions.
# ---------------------------------------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "function" {
  for_each    = local.functions
  name        = "otklik-${each.key}"
  location    = var.region
  description = "Otklik ${each.key} (${each.value.trigger} trigger)"

  build_config {
    runtime         = "python311"
    entry_point     = each.value.entry_point
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    available_memory      = each.value.memory
    timeout_seconds       = each.value.timeout_seconds
    min_instance_count    = 0
    max_instance_count    = each.value.max_instances
    service_account_email = google_service_account.function[each.key].email
    # Only Eventarc and Cloud Scheduler of this project call the functions: both count as internal traffic
    # for Cloud Run ingress, so nothing on the internet reaches them (and IAM still checks every call).
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    environment_variables          = local.common_env

    dynamic "secret_environment_variables" {
      for_each = local.secret_env[each.key]
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = data.google_secret_manager_secret.this[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.value.trigger == "pubsub" ? [each.value] : []
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
      pubsub_topic          = google_pubsub_topic.this[event_trigger.value.topic].id
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.eventarc.email
    }
  }

  depends_on = [
    google_project_service.this,
    google_project_iam_member.build,
    # Cloud Run refuses a revision whose service account cannot read its secrets.
    google_secret_manager_secret_iam_member.accessor,
  ]
}

# ---------------------------------------------------------------------------------------------------------
# Who may invoke what: Eventarc the Pub/Sub-triggered functions, Scheduler the scheduled ones. Nothing else.
# A gen2 function is served by the Cloud Run service of the same name, where roles/run.invoker is checked.
# ---------------------------------------------------------------------------------------------------------

resource "google_cloud_run_service_iam_member" "eventarc_invoker" {
  for_each = local.pubsub_functions
  location = google_cloudfunctions2_function.function[each.key].location
  service  = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.eventarc.email}"
}

resource "google_cloud_run_service_iam_member" "scheduler_invoker" {
  for_each = local.scheduled_functions
  location = google_cloudfunctions2_function.function[each.key].location
  service  = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

resource "google_cloud_scheduler_job" "function" {
  for_each  = local.scheduled_functions
  name      = "otklik-${each.key}"
  region    = var.region
  schedule  = each.value.schedule
  time_zone = var.scheduler_time_zone
  # Scheduler accepts 15 s to 30 min; wait as long as the function may run.
  attempt_deadline = "${min(max(each.value.timeout_seconds, 15), 1800)}s"

  http_target {
    http_method = "POST" # ingest and remind answer 405 to anything else
    uri         = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_service_iam_member.scheduler_invoker]
}
