# Every topic and every dead-letter topic of topology.json, keyed by topic name.
resource "google_pubsub_topic" "this" {
  for_each = toset(concat(local.topic_names, local.dead_letter_topic_names))
  name     = each.key

  depends_on = [google_project_service.this]
}

# A pull subscription on each dead-letter topic, so that nothing dead-lettered is lost and an operator can
# inspect and replay it (`gcloud pubsub subscriptions pull`). Same name as on the local stack:
# otklik.stack.topology.dead_letter_subscription().
resource "google_pubsub_subscription" "dead_letter" {
  for_each = toset(local.dead_letter_topic_names)
  name     = "${each.key}-pull"
  topic    = google_pubsub_topic.this[each.key].id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s" # 7 days

  # The default expiry deletes a subscription after 31 days without pulls: exactly what a quiet dead-letter
  # subscription looks like. An empty ttl means never expire.
  expiration_policy {
    ttl = ""
  }
}

# TODO(deploy issue): the subscriptions of topology.json (otklik-posts-classify, otklik-incidents-route) with
# their ack deadline, retry backoff, max_delivery_attempts and dead-letter topic are NOT created yet.
# For now each Pub/Sub-triggered function gets the push subscription Eventarc creates for its event_trigger
# (functions.tf), which Terraform cannot configure: no dead-letter policy, no backoff
# (https://github.com/hashicorp/terraform-provider-google/issues/17697, "Eventarc dead_letter_topic
# configuration"). Until then a failing message is retried by Eventarc (RETRY_POLICY_RETRY) and the
# functions quarantine it in Firestore after OTKLIK_MAX_RETRY_AGE_SECONDS, so nothing reaches the
# dead-letter topics yet. The deploy issue either replaces event_trigger with our own push subscriptions
# (push_config with an OIDC token, dead_letter_policy and retry_policy read from topology.json, plus the
# Pub/Sub service agent's publisher/subscriber grants that dead-lettering needs) or adopts the provider
# feature once #17697 is done.
