"""Jinja2 templates and hand-written kernel sources, shipped as package data."""
