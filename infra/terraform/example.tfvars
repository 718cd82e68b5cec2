# Copy to <environment>.tfvars and adjust. No secret belongs in this file: secrets are Secret Manager ids.
#   terraform -chdir=infra/terraform plan -var-file=prod.tfvars

project_id = "otklik-prod"
region     = "europe-north1"

functions = {
  # One ingest at a time is enough for a run every 10 minutes and keeps VK API calls sequential.
  ingest = { max_instances = 1, timeout_seconds = 300 }
  remind = { timeout_seconds = 300 }
  route  = { max_instances = 5 }
}

settings = {
  vk_api_version = "5.199"
  smtp_host      = "smtp.example.ru"
  smtp_port      = 587
  smtp_security  = "starttls"
  smtp_user      = "otklik@example.ru"
  mail_from      = "otklik@example.ru"
  log_level      = "INFO"
}

secrets = {
  vk_token      = "otklik-vk-token"
  smtp_password = "otklik-smtp-password"
}

scheduler_time_zone = "Europe/Moscow"
