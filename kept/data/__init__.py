"""Corpus readers, linked-example building, data modules and collators."""
