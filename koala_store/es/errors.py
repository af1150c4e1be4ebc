from __future__ import annotations

from ..errors import KoalaError


class ElasticsearchSetupError(KoalaError):
    """The local Elasticsearch cannot be fetched or started; the message says what to do."""
