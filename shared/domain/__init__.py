"""The domain model: posts, classifications, incidents and their lifecycle, departments, notifications."""
