variable "project_id" {
  description = "Google Cloud project that hosts Otklik (functions, Pub/Sub, Firestore, Scheduler)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6-30 lowercase letters, digits and hyphens."
  }
}

variable "region" {
  description = "Region of the functions, their Eventarc triggers, the Scheduler jobs and the source bucket."
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
    ingest = optional(object({
      memory          = optional(string, "256M")
      timeout_seconds = optional(number, 120)
      max_instances   = optional(number, 3)
    }), {})
    classify = optional(object({
      memory          = optional(string, "256M")
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
}

variable "settings" {
  description = "Non-secret OTKLIK_* settings of shared/config.py (class Settings), given to every function as environment variables. Leave an attribute unset (null) to keep the application's default. OTKLIK_PROJECT_ID and OTKLIK_TOPIC_* are set from project_id and topology.json, never here."
  type = object({
    firestore_database            = optional(string)
    vk_api_base                   = optional(string)
    vk_api_version                = optional(string)
    http_timeout_seconds          = optional(number)
    smtp_host                     = optional(string)
    smtp_port                     = optional(number)
    smtp_security                 = optional(string)
    smtp_user                     = optional(string)
    mail_from                     = optional(string)
    reply_deadline_hours          = optional(number)
    critical_reply_deadline_hours = optional(number)
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
}

variable "secrets" {
  description = "Secret Manager secret ids (names, never values). Create each secret and its first version before `terraform apply` (see README.md); Terraform only grants access and wires them as secret environment variables."
  type = object({
    # OTKLIK_VK_TOKEN, given to ingest only.
    vk_token = optional(string, "otklik-vk-token")
    # OTKLIK_SMTP_PASSWORD, given to route only; null when the SMTP server needs no login or e-mail is off.
    smtp_password = optional(string)
  })
  default = {}
}

variable "scheduler_time_zone" {
  description = "Time zone in which the cron schedules of topology.json are read."
  type        = string
  default     = "Etc/UTC"
}
