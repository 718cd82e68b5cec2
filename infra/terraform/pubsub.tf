# Every topic and every dead-letter topic of topology.json, keyed by topic name.
resource "google_pubsub_topic" "this" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption at rest: the messages are public social-network posts and ids, and customer-managed keys would add a KMS key ring to operate for no gain in confidentiality
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

# The subscriptions of topology.json (otklik-posts-classify, otklik-incidents-route) are our own push
# subscriptions, not Eventarc triggers: an Eventarc-managed subscription takes no dead-letter policy and no
# backoff from Terraform (https://github.com/hashicorp/terraform-provider-google/issues/17697). Pub/Sub pushes
# to the function's HTTPS address with an OIDC token of otklik-pubsub-push (roles/run.invoker on that function
# only); functions-framework turns the push body into the same CloudEvent an Eventarc trigger delivers
# (tests/integration/test_function_entrypoints.py posts one). A message failing max_delivery_attempts times,
# with exponential backoff between min and max_backoff_seconds, goes to the topic's dead-letter topic, where
# the pull subscription above keeps it for an operator; an alert fires (monitoring.tf).
resource "google_pubsub_subscription" "push" {
  for_each = local.push_subscriptions
  name     = each.key
  topic    = google_pubsub_topic.this[each.value.topic].id

  # For a push subscription the ack deadline is also the timeout of the push request: shorter than the function's
  # timeout, Pub/Sub would give up on a slow call (a receiver retried, an SMTP server slow), count it as a failed
  # attempt and push the message again while the first call still runs. So: at least the function's timeout
  # (at most 540 s, var.functions), never less than topology.json asks.
  ack_deadline_seconds       = max(each.value.ack_deadline_seconds, local.functions[each.value.push_to].timeout_seconds)
  message_retention_duration = each.value.message_retention_duration

  push_config {
    push_endpoint = google_cloudfunctions2_function.function[each.value.push_to].service_config[0].uri
    oidc_token {
      service_account_email = google_service_account.pusher.email
      audience              = google_cloudfunctions2_function.function[each.value.push_to].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "${each.value.min_backoff_seconds}s"
    maximum_backoff = "${each.value.max_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.this[each.value.dead_letter_topic].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  # Dead-lettering needs the Pub/Sub service agent's grants before the first message fails, and the first push
  # needs the agent's right to mint otklik-pubsub-push's token and that account's right to invoke.
  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_cloud_run_service_iam_member.pusher_invoker,
    google_service_account_iam_member.push_token_creator,
  ]
}

# Pub/Sub's own service agent moves failed messages: it publishes to the dead-letter topics and acknowledges on
# the subscriptions they come from (https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions),
# and mints the push subscriptions' OIDC tokens for otklik-pubsub-push. Granted on those resources only.
data "google_project" "this" {
  project_id = var.project_id
}

locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = toset(local.dead_letter_topic_names)
  topic    = google_pubsub_topic.this[each.key].name
  role     = "roles/pubsub.publisher"
  member   = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each     = local.push_subscriptions
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.pusher.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}
