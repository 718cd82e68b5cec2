# Copy to backend.hcl (git-ignored) and fill in. The bucket is created once, before the first `make plan`:
#   gcloud storage buckets create gs://PROJECT-otklik-tfstate --location=europe-north1 \
#     --uniform-bucket-level-access --public-access-prevention
#   gcloud storage buckets update gs://PROJECT-otklik-tfstate --versioning
bucket = "PROJECT-otklik-tfstate"
prefix = "otklik"
