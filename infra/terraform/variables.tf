variable "project_id" {
  description = "Google Cloud project that hosts Otklik (functions, Pub/Sub, Firestore, Scheduler)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "region" {
  description = "Region of the functions, the Scheduler jobs, the source bucket and (unless firestore.location is set) the Firestore database."
  type        = string
  # europe-north1 (Hamina, Finland) is the Google Cloud region nearest to the users and to what ingest calls:
  # the citizens are in Russia and api.vk.com is served from Moscow/St Petersburg, so it gives the lowest
  # latency of all regions. It runs Cloud Functions gen2, Eventarc, Pub/Sub and Cloud Scheduler, is a
  # low-CO2 region and sits in the cheaper Cloud Run pricing tier. europe-west3 (Frankfurt) is the fallback.
  default = "europe-north1"
}

variable "source_dir" {
  description = "Folder with one deployable folder per function, made by `make build` (otklik build). Relative paths are relative to this module."
  type        = string
  default     = "../../build/functions"
}

variable "functions" {
  description = "Per-function sizing. Each function may be omitted; each attribute falls back to its default."
  type = object({
    # 300 s: ingest stops starting sources after OTKLIK_INGEST_BUDGET_SECONDS (240 s by default) and needs the
    # rest to finish the source under way. One instance: the VK rate limit is kept per process but counted by VK
    # per token, so only a single poller keeps it true (see the validation below).
    ingest = optional(object({
      memory          = optional(string, "256M")
      timeout_seconds = optional(number, 300)
      max_instances   = optional(number, 1)
    }), {})
    # 512M: the sentence encoder of the classifier's second stage takes ~130 MB on top of ~130 MB (bench/results).
    classify = optional(object({
      memory          = optional(string, "512M")
      timeout_seconds = optional(number, 120)
      max_instances   = optional(number, 3)
    }), {})
    route = optional(object({
      memory          = optional(string, "256M")
      timeout_seconds = optional(number, 120)
      max_instances   = optional(number, 3)
    }), {})
    remind = optional(object({
      memory          = optional(string, "256M")
      timeout_seconds = optional(number, 120)
      max_instances   = optional(number, 3)
    }), {})
    # Once a working day: reads every open incident (a few hundred) and sends one e-mail per department.
    digest = optional(object({
      memory          = optional(string, "256M")
      timeout_seconds = optional(number, 300)
      max_instances   = optional(number, 1)
    }), {})
    # The public HTTP functions store a marker and publish one message per request: 30 s is ample, and a request
    # that takes longer has failed anyway (VK retries a Callback API event until it hears "ok"). Few instances
    # also cap what a flood of requests from the internet can cost.
    vk_callback = optional(object({
      memory          = optional(string, "256M")
      timeout_seconds = optional(number, 30)
      max_instances   = optional(number, 3)
    }), {})
    inbox = optional(object({
      memory          = optional(string, "256M")
      timeout_seconds = optional(number, 30)
      max_instances   = optional(number, 3)
    }), {})
    # Clerks and departments' systems: a few requests per incident, each a Firestore transaction and at most
    # one publish (re-routing).
    department_api = optional(object({
      memory          = optional(string, "256M")
      timeout_seconds = optional(number, 30)
      max_instances   = optional(number, 3)
    }), {})
    # Open data readers (portals, civic apps): read-only pages of at most 1,000 incidents, cacheable 5 minutes
    # (Cache-Control), so few instances serve many readers and cap what a crawler can cost.
    open311 = optional(object({
      memory          = optional(string, "256M")
      timeout_seconds = optional(number, 30)
      max_instances   = optional(number, 3)
    }), {})
  })
  default = {}

  validation {
    # 540 s is the limit of event-driven gen2 functions; HTTP ones could go higher, but none of ours needs to.
    condition     = alltrue([for f in values(var.functions) : f.timeout_seconds >= 1 && f.timeout_seconds <= 540])
    error_message = "timeout_seconds must be between 1 and 540."
  }
  validation {
    condition     = alltrue([for f in values(var.functions) : can(regex("^[0-9]+(M|Mi|G|Gi)$", f.memory))])
    error_message = "memory must look like 256M, 512Mi, 1G or 2Gi."
  }
  validation {
    condition     = alltrue([for f in values(var.functions) : f.max_instances >= 1])
    error_message = "max_instances must be at least 1."
  }
  validation {
    # Two ingest instances would each call VK at OTKLIK_VK_REQUESTS_PER_SECOND with the same token: twice the
    # per-token limit, and VK answers error 6 (too many requests per second).
    condition     = var.functions.ingest.max_instances == 1
    error_message = "functions.ingest.max_instances must be 1: one poller per VK token keeps VK's per-token rate limit."
  }
}

variable "settings" {
  description = "Non-secret OTKLIK_* settings of shared/config.py (class Settings), given to every function as environment variables. Leave an attribute unset (null) to keep the application's default. OTKLIK_PROJECT_ID and OTKLIK_TOPIC_* are set from project_id and topology.json, never here."
  type = object({
    firestore_database            = optional(string)
    vk_api_base                   = optional(string)
    vk_api_version                = optional(string)
    vk_token_kind                 = optional(string) # user, community or service: the kind of the VK token
    vk_official_ids               = optional(string) # comma-separated VK ids whose comments count as answers
    vk_requests_per_second        = optional(number) # default by kind: user 3, community 20, service 3
    telegram_api_base             = optional(string)
    max_api_base                  = optional(string)
    ok_api_base                   = optional(string)
    ok_application_key            = optional(string) # the public key; the secret key is in var.secrets
    ingest_budget_seconds         = optional(number) # keep below functions.ingest.timeout_seconds
    source_retry_attempts         = optional(number)
    source_backoff_seconds        = optional(number)
    source_backoff_max_seconds    = optional(number)
    http_timeout_seconds          = optional(number)
    smtp_host                     = optional(string)
    smtp_port                     = optional(number)
    smtp_security                 = optional(string)
    smtp_user                     = optional(string)
    mail_from                     = optional(string)
    mail_provider                 = optional(string) # smtp or ses
    ses_region                    = optional(string)
    ses_endpoint_url              = optional(string)
    webhook_attempts              = optional(number)
    # Default: department_api's own address (https://REGION-PROJECT.cloudfunctions.net/otklik-department-api);
    # set it when the function is behind a custom domain.
    public_api_url                = optional(string)
    answer_link_days              = optional(number)
    directory_ttl_seconds         = optional(number)
    undelivered_after_seconds     = optional(number)
    remind_batch_size             = optional(number)
    notification_lease_seconds    = optional(number)
    max_retry_age_seconds         = optional(number)
    log_level                     = optional(string)
  })
  default = {}

  validation {
    # "none" (plain SMTP) is for loopback sinks in development only.
    condition     = contains(["starttls", "ssl"], coalesce(var.settings.smtp_security, "starttls"))
    error_message = "smtp_security must be starttls or ssl in a deployment."
  }
  validation {
    condition     = contains(["user", "community", "service"], coalesce(var.settings.vk_token_kind, "service"))
    error_message = "vk_token_kind must be user, community or service."
  }
}

variable "secrets" {
  description = "Secret Manager secret ids (names, never values). Create each secret and its first version before `terraform apply` (see README.md); Terraform only grants access and wires them as secret environment variables."
  type = object({
    # OTKLIK_VK_TOKEN, given to ingest only.
    vk_token = optional(string, "otklik-vk-token")
    # OTKLIK_TELEGRAM_BOT_TOKEN, OTKLIK_OK_ACCESS_TOKEN, OTKLIK_OK_APPLICATION_SECRET_KEY, given to ingest only;
    # null when config/sources.yaml has no Telegram or Odnoklassniki source.
    telegram_bot_token        = optional(string)
    # OTKLIK_MAX_BOT_TOKEN, given to ingest only; null when config/sources.yaml has no MAX source.
    max_bot_token             = optional(string)
    ok_access_token           = optional(string)
    ok_application_secret_key = optional(string)
    # OTKLIK_VK_CALLBACK_SECRET, given to vk_callback only. Required: the function is public and refuses every
    # request while it has no secret.
    vk_callback_secret = optional(string, "otklik-vk-callback-secret")
    # OTKLIK_INBOX_TOKEN, given to inbox only. Required for the same reason.
    inbox_token = optional(string, "otklik-inbox-token")
    # OTKLIK_SMTP_PASSWORD, given to route only; null when the SMTP server needs no login or e-mail is off.
    smtp_password = optional(string)
    # OTKLIK_VK_REPLY_TOKEN, given to route and remind: a VK community token with the wall right; null: nothing
    # is posted to VK.
    vk_reply_token = optional(string)
    # OTKLIK_WEBHOOK_SECRETS, given to route and remind: a JSON object {"department id": "signing secret"}.
    webhook_secrets = optional(string, "otklik-webhook-secrets")
    # OTKLIK_LINK_SIGNING_KEY, given to route (signs answer links) and department_api (checks them).
    link_signing_key = optional(string, "otklik-link-signing-key")
  })
  default = {}

  validation {
    condition     = alltrue([for id in values(var.secrets) : id == null || can(regex("^[A-Za-z0-9_-]{1,255}$", id))])
    error_message = "secrets holds Secret Manager secret ids (letters, digits, _ and -), never secret values."
  }
}

variable "firestore" {
  description = "The Firestore database (firestore.tf). Its name is settings.firestore_database, \"(default)\" when unset."
  type = object({
    # false when the database exists already and is not imported: then Terraform manages only its indexes,
    # TTL policies and backup schedule.
    create_database = optional(bool, true)
    # A Firestore location (europe-north1, or the eur3 multi-region for higher availability at about twice
    # the price); null: var.region. Fixed at creation.
    location = optional(string)
    # A backup every Sunday kept 14 weeks, on top of 7 days of point-in-time recovery.
    weekly_backup = optional(bool, true)
  })
  default = {}
}

variable "scheduler_time_zone" {
  description = "Time zone in which the cron schedules of topology.json are read."
  type        = string
  default     = "Etc/UTC"
}

variable "alert_emails" {
  description = "E-mail addresses alerted on dead-lettered messages and failing functions (monitoring.tf). Empty: the alert policies exist and show in the console, but notify nobody."
  type        = list(string)
  default     = []
}

variable "function_error_alert_threshold" {
  description = "5xx answers per function in 10 minutes above which the function_errors alert fires. Pub/Sub-triggered functions answer 5xx on purpose to be redelivered, so a few are normal."
  type        = number
  default     = 20
}

variable "oldest_unacked_alert_minutes" {
  description = "Age in minutes of the oldest unacknowledged message of a push subscription above which the oldest_unacked_message alert fires. Retries of one message end (dead-lettered) within about 50 minutes."
  type        = number
  default     = 60

  validation {
    condition     = var.oldest_unacked_alert_minutes >= 5
    error_message = "oldest_unacked_alert_minutes must be at least 5: the condition is evaluated over 5-minute windows."
  }
}
