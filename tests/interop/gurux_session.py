"""A Gurux client session over a plain socket, shared by the interop tests (test-only:
Gurux is GPL and never imported from src/)."""

from __future__ import annotations

import socket
from typing import Any

from gurux_dlms import GXByteBuffer, GXReplyData


class GuruxSession:
    """Gurux builds the request bytes; we carry them over a plain socket and feed replies."""

    def __init__(self, host: str, port: int, client: Any) -> None:
        self.client = client
        self.sock = socket.create_connection((host, port), timeout=5)

    def _packet(self, data: Any, reply: Any) -> None:
        notify = GXReplyData()
        if data:
            self.sock.sendall(bytes(data))
        buffer = GXByteBuffer()
        while not self.client.getData(buffer, reply, notify):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buffer.set(chunk)
        if reply.error != 0:
            raise RuntimeError(f"gurux reply error {reply.error}")

    def exchange(self, data: Any) -> Any:
        """Send a request (or a list of frames) and follow block transfers to the end."""
        reply = GXReplyData()
        frames = data if isinstance(data, list) else [data]
        for frame in frames:
            reply.clear()
            self._packet(frame, reply)
            while reply.isMoreData():
                self._packet(self.client.receiverReady(reply), reply)
        return reply

    def associate(self) -> None:
        self.client.parseAareResponse(self.exchange(self.client.aarqRequest()).data)
        if self.client.isAuthenticationRequired:
            for request in self.client.getApplicationAssociationRequest():
                reply = self.exchange(request)
                self.client.parseApplicationAssociationResponse(reply.data)

    def read(self, item: Any, attribute: int) -> Any:
        reply = self.exchange(self.client.read(item, attribute))
        return self.client.updateValue(item, attribute, reply.value)

    def close(self) -> None:
        try:
            self.exchange(self.client.releaseRequest())
        finally:
            self.sock.close()
