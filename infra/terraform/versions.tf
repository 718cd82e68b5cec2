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

  # State lives in a versioned Cloud Storage bucket made once outside this configuration (README.md, "State"),
  # so that every operator and CI plan against one state, with locking, and an old state can be read back.
  # Partial configuration: the bucket and prefix come from backend.hcl (`make plan` passes
  # -backend-config=$(TFBACKEND); copy backend.example.hcl), so no project's bucket name is written here.
  backend "gcs" {}
}
