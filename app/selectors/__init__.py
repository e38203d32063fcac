"""Reads. Every selector takes the tenant (or the viewer), so scoping cannot be forgotten."""
