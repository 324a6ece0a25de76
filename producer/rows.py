"""One CSV row -> its WorkItem, or the reason it is rejected (the reason users read in
rejects.csv). Pure: no I/O."""

from __future__ import annotations

import functools
import re

from models import JobManifest, Source, WorkItem
from models.normalise import InvalidTarget, normalise
from models.records import ITEM_KEY_PATTERN, MAX_ITEM_KEY, MAX_TARGET
from producer.csvstream import Header, RawRow

# The checks WorkItem's validation would make on a row's own fields (see below for why rows
# are not validated one by one).
_ITEM_KEY = re.compile(ITEM_KEY_PATTERN)
_SURROGATE = re.compile("[\udc80-\udcff]")


class RowClassifier:
    """Classifies the rows of one job's file."""

    def __init__(self, manifest: JobManifest, header: Header) -> None:
        assert manifest.platform is not None and manifest.kind is not None
        self._m = manifest
        self._header = header
        self._platform = manifest.platform
        self._kind = manifest.kind

    def item(self, raw: RawRow) -> WorkItem | str:
        """The row's WorkItem, or the reason it is rejected."""
        header = self._header
        if raw.fields is None:
            return raw.error or "unreadable CSV row"
        if not any(f.strip() for f in raw.fields):
            return "blank row"
        width = len(header.columns)
        if len(raw.fields) > width:
            return f"row has {len(raw.fields)} fields but the header has {width} (an unquoted delimiter?)"
        if len(raw.fields) <= header.target_index:
            where = f"'{header.target_column}' is field {header.target_index + 1}"
            return f"row has {len(raw.fields)} fields; {where}"
        if any(_SURROGATE.search(f) for f in raw.fields):
            return "row is not valid UTF-8; save the file as CSV UTF-8"
        try:
            target = normalise(self._platform, self._kind, raw.fields[header.target_index])
        except InvalidTarget as exc:
            return str(exc)
        key_ok = len(target.item_key) <= MAX_ITEM_KEY and _ITEM_KEY.match(target.item_key)
        if not key_ok or len(target.value) > MAX_TARGET:
            return f"row cannot become a message: item key {target.item_key!r} or target is malformed"
        # The job-wide fields were validated once (_prototype); the row's own pieces just above
        # and by normalise(), so the per-row pydantic validation (a third of the CPU) is skipped.
        row = {
            "item_key": target.item_key,
            "target": target.value,
            "source": Source.model_construct(bucket=self._m.input.bucket, key=self._m.input.key, row=raw.row),
            "context": self._context(raw.fields),
        }
        return WorkItem.model_construct(**(self._prototype.__dict__ | row))

    def value(self, raw: RawRow) -> str:
        """The row's raw target value, for rejects.csv."""
        fields = raw.fields or []
        index = self._header.target_index
        return fields[index] if len(fields) > index else ""

    @functools.cached_property
    def _prototype(self) -> WorkItem:
        """A fully validated WorkItem carrying this job's fields; rows differ from it only in
        item_key, target, source row and context."""
        return WorkItem(
            job_id=self._m.job_id,
            job_date=self._m.job_date,
            platform=self._platform,
            kind=self._kind,
            item_key="prototype",
            target="prototype",
            source=Source(bucket=self._m.input.bucket, key=self._m.input.key, row=2),
        )

    def _context(self, fields: list[str]) -> dict[str, str]:
        """Every other column travels with the item, so analysts can join their own ids back."""
        context: dict[str, str] = {}
        for index, name in enumerate(self._header.columns):
            if index == self._header.target_index:
                continue
            key = name or f"column_{index + 1}"
            while key in context:
                key += "_"
            context[key] = fields[index] if index < len(fields) else ""
        return context
