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
  # resource_name is the key with "_" as "-" (vk_callback -> vk-callback): service account ids and Cloud Run
  # service names take no underscores.
  functions = {
    for name, f in local.topology.functions : name => {
      resource_name   = replace(name, "_", "-")
      entry_point     = f.entry_point
      trigger         = f.trigger
      schedule        = try(f.schedule, null)
      public          = try(f.public, false)
      topic           = f.trigger == "pubsub" ? local.topics_by_key[f.topic].name : null
      memory          = var.functions[name].memory
      timeout_seconds = var.functions[name].timeout_seconds
      max_instances   = var.functions[name].max_instances
    }
  }
  pubsub_functions    = { for name, f in local.functions : name => f if f.trigger == "pubsub" }
  # Each subscription of topology.json, with its topic and dead-letter topic (pubsub.tf).
  push_subscriptions = merge([
    for t in local.topology.topics : {
      for s in t.subscriptions : s.name => merge(s, { topic = t.name, dead_letter_topic = t.dead_letter_topic })
    }
  ]...)
  scheduled_functions = { for name, f in local.functions : name => f if f.schedule != null }
  # "public": true in topology.json: reachable from the internet (vk_callback for VK's Callback API, inbox for
  # other systems, department_api for departments, open311 for open-data readers). Every other function is
  # internal-only.
  public_functions = { for name, f in local.functions : name => f if f.public }

  # Topic key/function -> the grant of roles/pubsub.publisher on that topic, one per entry of each topic's
  # "publishers" in topology.json (posts: ingest, vk_callback, inbox; incidents: classify).
  topic_publishers = merge([
    for t in local.topology.topics : {
      for fn in t.publishers : "${t.key}/${fn}" => { topic = t.name, function = fn }
    }
  ]...)

  # Every function reads or writes Firestore (shared/bootstrap.py): ingest its cursors, source health and
  # published-post markers; classify and route the incidents and the quarantine of unreadable messages;
  # remind the incidents; vk_callback and inbox the markers and the quarantine. Hence roles/datastore.user each.
  firestore_functions = toset(keys(local.functions))

  # Function -> {environment variable -> Secret Manager secret id}. Each secret reaches only the function that
  # reads it. Indexing this map by function name (functions.tf) makes a function added to topology.json but not
  # here fail at plan time. The optional secrets are wired only when their id is set in var.secrets.
  secret_env = {
    ingest = merge(
      { OTKLIK_VK_TOKEN = var.secrets.vk_token },
      {
        for key, secret in {
          OTKLIK_TELEGRAM_BOT_TOKEN        = var.secrets.telegram_bot_token
          OTKLIK_MAX_BOT_TOKEN             = var.secrets.max_bot_token
          OTKLIK_OK_ACCESS_TOKEN           = var.secrets.ok_access_token
          OTKLIK_OK_APPLICATION_SECRET_KEY = var.secrets.ok_application_secret_key
        } : key => secret if secret != null
      },
    )
    classify = {}
    # route signs webhooks (one key per department, a JSON object) and the answer links in e-mails;
    # department_api checks those links. Department API tokens are not secrets here: only their SHA-256
    # digests are stored, in Firestore.
    route = merge(
      {
        OTKLIK_WEBHOOK_SECRETS  = var.secrets.webhook_secrets
        OTKLIK_LINK_SIGNING_KEY = var.secrets.link_signing_key
      },
      var.secrets.smtp_password == null ? {} : { OTKLIK_SMTP_PASSWORD = var.secrets.smtp_password },
      var.secrets.vk_reply_token == null ? {} : { OTKLIK_VK_REPLY_TOKEN = var.secrets.vk_reply_token },
    )
    # remind sends reminders and escalations on the departments' channels (signed webhooks, e-mail) and asks
    # authors "is it fixed?" under their VK posts.
    remind = merge(
      { OTKLIK_WEBHOOK_SECRETS = var.secrets.webhook_secrets },
      var.secrets.smtp_password == null ? {} : { OTKLIK_SMTP_PASSWORD = var.secrets.smtp_password },
      var.secrets.vk_reply_token == null ? {} : { OTKLIK_VK_REPLY_TOKEN = var.secrets.vk_reply_token },
    )
    # digest: one e-mail per department with answer links, and the weekly report to the coordinators.
    digest = merge(
      { OTKLIK_LINK_SIGNING_KEY = var.secrets.link_signing_key },
      var.secrets.smtp_password == null ? {} : { OTKLIK_SMTP_PASSWORD = var.secrets.smtp_password },
    )
    vk_callback    = { OTKLIK_VK_CALLBACK_SECRET = var.secrets.vk_callback_secret }
    inbox          = { OTKLIK_INBOX_TOKEN = var.secrets.inbox_token }
    department_api = { OTKLIK_LINK_SIGNING_KEY = var.secrets.link_signing_key }
    # open311 publishes complaints without personal data: it needs no secret.
    open311 = {}
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
    # Answer links in e-mails lead here. A gen2 function's cloudfunctions.net address is known before it
    # exists, which spares route a dependency on department_api (both come from one for_each).
    { OTKLIK_PUBLIC_API_URL = "https://${var.region}-${var.project_id}.cloudfunctions.net/otklik-department-api" },
    { for t in local.topology.topics : t.settings_variable => google_pubsub_topic.this[t.name].name },
    { for k, v in var.settings : "OTKLIK_${upper(k)}" => tostring(v) if v != null },
  )

  # Firestore database of the index and the TTL policies (firestore.tf): the one the functions use.
  firestore_database = coalesce(var.settings.firestore_database, "(default)")

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
    "monitoring.googleapis.com",
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
  # checkov:skip=CKV_GCP_62:The bucket holds only the functions' source zips, written by terraform apply and read by Cloud Build; who changed them is in Cloud Audit Logs (Admin Activity), and access logs would add a log bucket to keep for no reader
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
