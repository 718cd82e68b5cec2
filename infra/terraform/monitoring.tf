# Alerts for a person to act on: messages in a dead-letter topic (something failed max_delivery_attempts times),
# a push subscription whose oldest message waits too long (its function cannot keep up or keeps failing), and
# functions answering 5xx more than their retries explain. All go to var.alert_emails.

resource "google_monitoring_notification_channel" "email" {
  for_each     = toset(var.alert_emails)
  display_name = "Otklik alerts: ${each.key}"
  type         = "email"
  labels = {
    email_address = each.key
  }

  depends_on = [google_project_service.this]
}

locals {
  alert_channels = [for c in google_monitoring_notification_channel.email : c.id]
  dead_letter_subscription_filter = join(", ", [for name in local.dead_letter_topic_names : "\"${name}-pull\""])
  push_subscription_filter        = join(", ", [for name in keys(local.push_subscriptions) : "\"${name}\""])
}

# A dead-lettered message waits in <dead-letter topic>-pull (pubsub.tf) until someone looks at it.
resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  display_name          = "Otklik: messages in a dead-letter subscription"
  combiner              = "OR"
  notification_channels = local.alert_channels

  conditions {
    display_name = "undelivered messages in a dead-letter subscription"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.label.subscription_id = one_of(${local.dead_letter_subscription_filter})"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A message failed every delivery attempt and was dead-lettered. Pull it with `gcloud pubsub subscriptions pull <subscription> --limit=10` (do not --auto-ack until it is understood), read the function's logs for its message id, fix the cause, and republish it to the original topic. See infra/terraform/README.md."
  }

  depends_on = [google_project_service.this]
}

# A message still unacknowledged after var.oldest_unacked_alert_minutes: a post not yet classified or an
# incident not yet routed, so a department hears of it late. Retries alone stay below the default hour: five
# attempts with backoff of at most 600 s each are done within about 50 minutes, after which the message is
# dead-lettered (the alert above). Age is what matters to a resident, not the count, which a burst inflates.
resource "google_monitoring_alert_policy" "oldest_unacked_message" {
  display_name          = "Otklik: messages waiting too long"
  combiner              = "OR"
  notification_channels = local.alert_channels

  conditions {
    display_name = "oldest unacknowledged message of a push subscription"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.label.subscription_id = one_of(${local.push_subscription_filter})"
      comparison      = "COMPARISON_GT"
      threshold_value = var.oldest_unacked_alert_minutes * 60
      duration        = "300s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Posts or incidents are waiting in a push subscription longer than they should. The function it pushes to (otklik-classify or otklik-route) is failing or at max instances: read its logs and 5xx rate; raise functions.<name>.max_instances if it is saturated."
  }

  depends_on = [google_project_service.this]
}

# The Pub/Sub-triggered functions answer 5xx on purpose to be redelivered (a receiver down, a rate limit), so
# only a sustained rate alerts: more than var.function_error_alert_threshold in 10 minutes.
resource "google_monitoring_alert_policy" "function_errors" {
  display_name          = "Otklik: functions failing"
  combiner              = "OR"
  notification_channels = local.alert_channels

  conditions {
    display_name = "5xx answers of the Otklik functions"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.label.response_code_class = \"5xx\" AND resource.label.service_name = starts_with(\"otklik-\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.function_error_alert_threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "An Otklik function keeps failing. Its logs (Logs Explorer, resource Cloud Run revision otklik-<function>) say why; source_health and quarantine in Firestore say which source or message."
  }

  depends_on = [google_project_service.this]
}
