terraform {
  # optional() attributes with defaults need >= 1.3; 1.5 is the floor we test the configuration against.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    # Zips build/functions/<name> for Cloud Functions (data "archive_file" in functions.tf).
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
  }

  # State is local for now. The deploy issue adds a `backend "gcs"` block (a versioned state bucket created
  # outside this configuration) so that CI and operators share one state.
}
