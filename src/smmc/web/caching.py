"""HTTP validation for large read-only bodies (the map's 100,000 meters): a strong ETag
derived from the body and ``304 Not Modified`` when the client already holds it
(RFC 9110 §8.8.3, §13.1.2), so an unchanged fleet is not sent again."""

from __future__ import annotations

import hashlib

from fastapi import Request, Response

NOT_MODIFIED = 304


def entity_tag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(header: str | None, tag: str) -> bool:
    """If-None-Match uses the weak comparison: ``W/`` prefixes are ignored."""
    if header is None:
        return False
    candidates = {part.strip().removeprefix("W/") for part in header.split(",")}
    return "*" in candidates or tag in candidates


def validated_response(request: Request, body: bytes, media_type: str) -> Response:
    """The body with its ETag; the browser keeps it but revalidates every time
    (``private, no-cache``: the data is per user session and changes any minute)."""
    tag = entity_tag(body)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=NOT_MODIFIED, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
