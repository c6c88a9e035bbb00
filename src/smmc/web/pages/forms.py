"""Form bodies without python-multipart: URL-encoded forms with the stdlib's query parser,
`multipart/form-data` uploads with the stdlib's MIME parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

from fastapi import Request

MAX_FORM_BYTES = 20 * 1024 * 1024


class BadForm(ValueError):
    """A body that is not a form the page can read (too large, wrong type, malformed)."""


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    content: bytes


@dataclass(slots=True)
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)

    def text(self, name: str) -> str:
        return self.fields.get(name, "").strip()


def parse_form(content_type: str, body: bytes) -> Form:
    if len(body) > MAX_FORM_BYTES:
        raise BadForm(f"the form is larger than {MAX_FORM_BYTES // (1024 * 1024)} MiB")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise BadForm("the form is not UTF-8") from exc
        return Form(fields=dict(pairs))
    if kind == "multipart/form-data":
        return _multipart(content_type, body)
    raise BadForm(f"unexpected form type {kind or 'none'}")


def _multipart(content_type: str, body: bytes) -> Form:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadForm("a multipart form without parts")
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            form.files[name] = Upload(filename, data)
        else:
            try:
                form.fields[name] = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadForm(f"field {name!r} is not UTF-8") from exc
    return form


async def read_form(request: Request) -> Form:
    return parse_form(request.headers.get("content-type", ""), await request.body())
