"""Steward: the Django project package and the parent of the domain apps."""

from governance.celery import app as celery_app

__all__ = ["celery_app"]
