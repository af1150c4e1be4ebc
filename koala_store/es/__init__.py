"""A local Elasticsearch for development and tests (see local.py)."""

from .local import ES_VERSION, ElasticsearchSetupError, LocalElasticsearch

__all__ = ["ES_VERSION", "ElasticsearchSetupError", "LocalElasticsearch"]
