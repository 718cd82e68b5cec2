provider "google" {
  project = var.project_id
  region  = var.region
}

locals {
  # The one definition of topics, subscriptions, dead-letter topics and triggers, shared with the local stack
  # (otklik/stack/topology.py). Never repeat a topic or function name here: read it from the file.
  topology = jsondecode(file("${path.module}/topology.json"))

  topics_by_key           = { for t in local.topology.topics : t.key => t }
  topic_names             = [for t in local.topology.topics : t.name]
  dead_letter_topic_names = [for t in local.topology.topics : t.dead_letter_topic]

  # One entry per function of topology.json, with its sizing from var.functions. Indexing var.functions by
  # name makes a function added to topology.json but not to variables.tf fail at plan time, not at runtime.
  functions = {
    for name, f in local.topology.functions : name => {
      entry_point     = f.entry_point
      trigger         = f.trigger
      schedule        = try(f.schedule, null)
      topic           = f.trigger == "pubsub" ? local.topics_by_key[f.topic].name : null
      memory          = var.functions[name].memory
      timeout_seconds = var.functions[name].timeout_seconds
      max_instances   = var.functions[name].max_instances
    }
  }
  pubsub_functions    = { for name, f in local.functions : name => f if f.trigger == "pubsub" }
  scheduled_functions = { for name, f in local.functions : name => f if f.schedule != null }

  # Every function reads or writes Firestore (shared/bootstrap.py): ingest its cursors, classify and route the
  # incidents and the quarantine of unreadable messages, remind the incidents. Hence roles/datastore.user each.
  firestore_functions = toset(keys(local.functions))

  # Function -> {environment variable -> Secret Manager secret id}. Only ingest ever sees the VK token.
  secret_env = {
    ingest   = { OTKLIK_VK_TOKEN = var.secrets.vk_token }
    classify = {}
    route    = var.secrets.smtp_password == null ? {} : { OTKLIK_SMTP_PASSWORD = var.secrets.smtp_password }
    remind   = {}
  }
  secret_bindings = merge([
    for fn, envs in local.secret_env : {
      for key, secret in envs : "${fn}/${key}" => { function = fn, key = key, secret = secret }
    }
  ]...)

  # Environment of every function: the project, the topic names under the variable shared/config.py reads
  # (settings_variable in topology.json), then the non-null operator settings.
  common_env = merge(
    { OTKLIK_PROJECT_ID = var.project_id },
    { for t in local.topology.topics : t.settings_variable => google_pubsub_topic.this[t.name].name },
    { for k, v in var.settings : "OTKLIK_${upper(k)}" => tostring(v) if v != null },
  )

  # Resolve var.source_dir against this module unless it is absolute; the zips go next to it (build/dist by
  # default, which .gitignore already covers).
  source_dir = abspath(startswith(var.source_dir, "/") ? var.source_dir : "${path.module}/${var.source_dir}")
  dist_dir   = "${dirname(local.source_dir)}/dist"
}

resource "google_project_service" "this" {
  for_each = toset([
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
    "pubsub.googleapis.com",
    "firestore.googleapis.com",
    "cloudscheduler.googleapis.com",
    "secretmanager.googleapis.com",
    # Service accounts are created below.
    "iam.googleapis.com",
  ])
  service = each.key

  # Turning an API off on `destroy` would break anything else in the project that uses it.
  disable_on_destroy = false
}

# Zipped function sources. Objects are named by content hash, so an unchanged build uploads nothing and a
# changed one creates a new object, which redeploys the function.
resource "google_storage_bucket" "sources" {
  name     = "${var.project_id}-otklik-sources"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}
