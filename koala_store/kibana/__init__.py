"""Kibana saved objects for koala-store's indices (data views, searches, Lens visualizations,
dashboards), generated from one place (objects.py), and their installer (install.py)."""
