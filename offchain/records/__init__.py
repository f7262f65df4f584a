"""Records: the upload / grant / fetch / revoke workflow over the chain, the store and the keystore."""

from offchain.records.index import IndexEntry, RecordIndex, RecordIndexError
from offchain.records.service import AccessRefused, Fetched, RecordError, RecordService, stream_record_id

__all__ = [
    "AccessRefused",
    "Fetched",
    "IndexEntry",
    "RecordError",
    "RecordIndex",
    "RecordIndexError",
    "RecordService",
    "stream_record_id",
]
