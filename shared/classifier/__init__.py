"""Deciding what a post is about. The foundation ships a keyword table; a trained classifier replaces it
behind the same ``Classifier`` interface."""
