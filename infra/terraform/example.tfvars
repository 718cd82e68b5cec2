# Copy to <environment>.tfvars and adjust. No secret belongs in this file: secrets are Secret Manager ids.
#   make plan TFVARS=infra/terraform/prod.tfvars   (prod.tfvars is the default)

project_id = "otklik-prod"
region     = "europe-north1"

functions = {
  # ingest keeps its defaults: 1 instance (one poller per VK token; the only value allowed) and a 300 s timeout
  # (above settings.ingest_budget_seconds, 240 by default).
  remind = { timeout_seconds = 300 }
  route  = { max_instances = 5 }
}

settings = {
  vk_api_version = "5.199"
  vk_token_kind  = "service" # user, community or service: sets the default VK request rate
  smtp_host      = "smtp.example.ru"
  smtp_port      = 587
  smtp_security  = "starttls"
  smtp_user      = "otklik@example.ru"
  mail_from      = "otklik@example.ru"
  log_level      = "INFO"
}

secrets = {
  vk_token           = "otklik-vk-token"
  vk_callback_secret = "otklik-vk-callback-secret"
  inbox_token        = "otklik-inbox-token"
  smtp_password      = "otklik-smtp-password"
  # Only with Telegram or Odnoklassniki sources in config/sources.yaml:
  # telegram_bot_token        = "otklik-telegram-bot-token"
  # Only with a MAX source:
  # max_bot_token             = "otklik-max-bot-token"
  # ok_access_token           = "otklik-ok-access-token"
  # ok_application_secret_key = "otklik-ok-application-secret-key"
}

# Created by Terraform in Native mode, point-in-time recovery on, weekly backups. An existing "(default)"
# database: import it (README.md) or set create_database = false.
firestore = {
  location = "europe-north1"
}

scheduler_time_zone = "Europe/Moscow"

# Who hears of dead-lettered messages and failing functions (monitoring.tf).
alert_emails = ["otklik-oncall@region.example"]
# A post or incident waiting longer than this before its function takes it is alerted on.
oldest_unacked_alert_minutes = 60
