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
  account_id   = "otklik-${each.value.resource_name}"
  display_name = "Otklik ${each.key} function (runtime)"

  depends_on = [google_project_service.this]
}

# Identity of the OIDC token with which Pub/Sub pushes messages to classify and route (pubsub.tf).
resource "google_service_account" "pusher" {
  account_id   = "otklik-pubsub-push"
  display_name = "Otklik Pub/Sub push subscriptions (invokes the Pub/Sub-triggered functions)"

  depends_on = [google_project_service.this]
}

# Identity with which Cloud Scheduler calls the scheduled functions, ingest and remind (OIDC token).
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

# A function may publish only to the topics whose "publishers" in topology.json name it: ingest, vk_callback
# and inbox to posts, classify to incidents. On the topic, not the project.
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.topic_publishers
  topic    = google_pubsub_topic.this[each.value.topic].name
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.function[each.value.function].email}"
}

data "google_secret_manager_secret" "this" {
  for_each  = toset([for b in values(local.secret_bindings) : b.secret])
  secret_id = each.key
}

# Each secret is readable only by the function that needs it (local.secret_env): the source tokens by ingest,
# the Callback API secret by vk_callback, the inbox token by inbox, the SMTP password by route.
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
  # checkov:skip=CKV_GCP_124:ALLOW_ALL only for the functions topology.json marks public (vk_callback, inbox, department_api authenticate each request; open311 serves open data without personal data); all others are ALLOW_INTERNAL_ONLY (tests/unit/test_terraform.py)
  for_each    = local.functions
  name        = "otklik-${each.value.resource_name}"
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
    available_memory = each.value.memory
    # ingest: 300 s by default (var.functions), because it stops starting sources after
    # OTKLIK_INGEST_BUDGET_SECONDS (240 s) and a source it has started may still need the rest to finish.
    timeout_seconds    = each.value.timeout_seconds
    min_instance_count = 0
    # ingest: 1 (var.functions). The VK rate limit (OTKLIK_VK_REQUESTS_PER_SECOND) is kept per process, while
    # VK counts it per token: one poller at a time keeps the two equal.
    max_instance_count    = each.value.max_instances
    service_account_email = google_service_account.function[each.key].email
    # Internal-only except the functions topology.json marks "public": Pub/Sub push and Cloud Scheduler of this
    # project count as internal traffic for Cloud Run ingress, so nothing on the internet reaches the others
    # (and IAM still checks every call). vk_callback, inbox and department_api must be reachable by VK, other
    # systems and clerks: they take all traffic and authenticate each request themselves (VK's secret, the
    # inbox bearer token, a department's token or a signed answer link); open311 serves open data to anyone.
    ingress_settings               = each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
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

  depends_on = [
    google_project_service.this,
    google_project_iam_member.build,
    # Cloud Run refuses a revision whose service account cannot read its secrets.
    google_secret_manager_secret_iam_member.accessor,
  ]

  lifecycle {
    # Cut off in the middle of a source, ingest publishes its posts again next run (and VK counts the calls).
    precondition {
      condition     = each.key != "ingest" || each.value.timeout_seconds > coalesce(var.settings.ingest_budget_seconds, 240)
      error_message = "functions.ingest.timeout_seconds must exceed settings.ingest_budget_seconds (default 240), with room for the last source: 300 by default."
    }
  }
}

# ---------------------------------------------------------------------------------------------------------
# Who may invoke what: Pub/Sub's push subscriptions the Pub/Sub-triggered functions, Scheduler the scheduled ones, anyone the
# public ones. Nothing else. A gen2 function is served by the Cloud Run service of the same name, where
# roles/run.invoker is checked.
# ---------------------------------------------------------------------------------------------------------

resource "google_cloud_run_service_iam_member" "pusher_invoker" {
  for_each = local.pubsub_functions
  location = google_cloudfunctions2_function.function[each.key].location
  service  = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.pusher.email}"
}

resource "google_cloud_run_service_iam_member" "scheduler_invoker" {
  for_each = local.scheduled_functions
  location = google_cloudfunctions2_function.function[each.key].location
  service  = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# vk_callback, inbox, department_api and open311 ("public": true in topology.json) are called by VK's servers,
# by other systems, by departments' clerks and by open-data readers, none of which can present a Google
# identity: allUsers may invoke these four and no other function. The request is authenticated by the function: vk_callback compares VK's
# secret (OTKLIK_VK_CALLBACK_SECRET) and answers 403 without it, inbox compares the bearer token
# (OTKLIK_INBOX_TOKEN) and answers 401; both refuse everything when their secret is unset. department_api
# takes a department's token (only its SHA-256 is stored, in Firestore) or a link signed with
# OTKLIK_LINK_SIGNING_KEY. open311 is open data: read-only, complaints without personal data
# (shared/services/open311.py), for anyone.
resource "google_cloud_run_service_iam_member" "public_invoker" {
  # checkov:skip=CKV_GCP_102:Public on purpose: only the functions topology.json marks public (vk_callback, inbox, department_api authenticate each request themselves; open311 is open data, read-only, without personal data)
  for_each = local.public_functions
  location = google_cloudfunctions2_function.function[each.key].location
  service  = google_cloudfunctions2_function.function[each.key].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_scheduler_job" "function" {
  for_each  = local.scheduled_functions
  name      = "otklik-${each.value.resource_name}"
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
