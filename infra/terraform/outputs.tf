# Names and addresses only: nothing here is, or is derived from, a secret.

output "function_uris" {
  description = "HTTPS address of each function's Cloud Run service. Only those in public_function_uris are reachable from the internet; the others have internal ingress."
  value       = { for name, f in google_cloudfunctions2_function.function : name => f.service_config[0].uri }
}

output "public_function_uris" {
  description = "Addresses of the public functions: vk_callback's goes into the VK community's Callback API settings, inbox's to the systems that post to it, department_api's to the departments, open311's to the open-data portal."
  value       = { for name, f in local.public_functions : name => google_cloudfunctions2_function.function[name].service_config[0].uri }
}

output "topic_names" {
  description = "Pub/Sub topic of each topology.json key (posts, incidents)."
  value       = { for key, t in local.topics_by_key : key => google_pubsub_topic.this[t.name].name }
}

output "dead_letter_topic_names" {
  description = "Dead-letter topics of topology.json."
  value       = [for name in local.dead_letter_topic_names : google_pubsub_topic.this[name].name]
}

output "dead_letter_subscription_names" {
  description = "Pull subscriptions on the dead-letter topics, for inspection and replay."
  value       = [for s in google_pubsub_subscription.dead_letter : s.name]
}

output "function_service_accounts" {
  description = "Runtime service account e-mail of each function."
  value       = { for name, sa in google_service_account.function : name => sa.email }
}

output "scheduler_jobs" {
  description = "Cloud Scheduler job of each scheduled function (run one now with `gcloud scheduler jobs run`)."
  value       = { for name, j in google_cloud_scheduler_job.function : name => j.name }
}

output "source_bucket" {
  description = "Bucket holding the zipped function sources."
  value       = google_storage_bucket.sources.name
}
