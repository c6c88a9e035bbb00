"""Interface class 18, Image transfer: firmware upload in blocks, verify, activate.

Verification and activation are synchronous and delegate to callbacks, so a simulated meter
can check the image and change its firmware version when it is activated.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import ClassVar

from smmc.dlms.axdr import BitString, Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    SelectiveAccessDescriptor,
    expect_bool,
    expect_bytes,
    expect_int,
    expect_items,
)
from smmc.dlms.obis import Obis

__all__ = ["IMAGE_TRANSFER_OBIS", "ImageTransfer", "ImageTransferStatus"]

IMAGE_TRANSFER_OBIS = Obis(0, 0, 44, 0, 0, 255)


class ImageTransferStatus(IntEnum):
    """Attribute 6."""

    NOT_INITIATED = 0
    INITIATED = 1
    VERIFICATION_INITIATED = 2
    VERIFICATION_SUCCESSFUL = 3
    VERIFICATION_FAILED = 4
    ACTIVATION_INITIATED = 5
    ACTIVATION_SUCCESSFUL = 6
    ACTIVATION_FAILED = 7


Verifier = Callable[[bytes, bytes], bool]
"""(identifier, image) → whether the image is acceptable."""
Activator = Callable[[bytes, bytes], None]
"""(identifier, image) → install it; raise to report an activation failure."""

_S = ImageTransferStatus


class ImageTransfer(CosemObject):
    """IC 18 v0: image_block_size (2), image_transferred_blocks_status (3),
    image_first_not_transferred_block_number (4), image_transfer_enabled (5),
    image_transfer_status (6), image_to_activate_info (7); methods image_transfer_initiate
    (1), image_block_transfer (2), image_verify (3), image_activate (4).
    """

    CLASS_ID: ClassVar[int] = 18
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 7
    METHOD_COUNT: ClassVar[int] = 4

    def __init__(
        self,
        logical_name: Obis = IMAGE_TRANSFER_OBIS,
        block_size: int = 192,
        enabled: bool = True,
        max_image_size: int = 16 * 1024 * 1024,
        verifier: Verifier | None = None,
        on_activate: Activator | None = None,
    ) -> None:
        super().__init__(logical_name)
        self.block_size = block_size
        self.enabled = enabled
        self.max_image_size = max_image_size
        self.verifier = verifier
        self.on_activate = on_activate
        self.status = _S.NOT_INITIATED
        self.identifier = b""
        self.size = 0
        self._blocks: list[bytes | None] = []

    @property
    def block_count(self) -> int:
        """Blocks needed for the image being transferred."""
        return len(self._blocks)

    def first_missing_block(self) -> int:
        """Attribute 4: the lowest block number not yet received (= count when complete)."""
        return next((i for i, b in enumerate(self._blocks) if b is None), len(self._blocks))

    def image(self) -> bytes:
        """The received image; only complete once every block arrived."""
        return b"".join(b for b in self._blocks if b is not None)

    # -- methods -------------------------------------------------------------------------

    def initiate(self, identifier: bytes, size: int) -> None:
        """Method 1: start (or restart) a transfer."""
        if not self.enabled:
            raise CosemAccessError(AccessResult.READ_WRITE_DENIED, "image transfer disabled")
        if not 0 < size <= self.max_image_size:
            raise CosemAccessError(
                AccessResult.OTHER_REASON, f"image size {size} outside 1..{self.max_image_size}"
            )
        self.identifier = identifier
        self.size = size
        self._blocks = [None] * -(-size // self.block_size)
        self.status = _S.INITIATED

    def transfer_block(self, number: int, value: bytes) -> None:
        """Method 2: store one block (full size except the last one)."""
        if self.status is not _S.INITIATED:
            raise CosemAccessError(AccessResult.TEMPORARY_FAILURE, "no transfer initiated")
        if not 0 <= number < self.block_count:
            raise CosemAccessError(
                AccessResult.OTHER_REASON, f"block {number} outside 0..{self.block_count - 1}"
            )
        expected = min(self.block_size, self.size - number * self.block_size)
        if len(value) != expected:
            raise CosemAccessError(
                AccessResult.OTHER_REASON, f"block {number} has {len(value)} octets, not {expected}"
            )
        self._blocks[number] = value

    def verify(self) -> None:
        """Method 3: check completeness and (through the verifier) the image itself."""
        if self.status is _S.NOT_INITIATED:
            raise CosemAccessError(AccessResult.TEMPORARY_FAILURE, "no transfer initiated")
        if self.first_missing_block() < self.block_count:
            self.status = _S.VERIFICATION_FAILED
            raise CosemAccessError(
                AccessResult.OTHER_REASON, f"block {self.first_missing_block()} missing"
            )
        ok = self.verifier is None or self.verifier(self.identifier, self.image())
        self.status = _S.VERIFICATION_SUCCESSFUL if ok else _S.VERIFICATION_FAILED
        if not ok:
            raise CosemAccessError(AccessResult.OTHER_REASON, "image verification failed")

    def activate(self) -> None:
        """Method 4: verify if not done yet, then hand the image to ``on_activate``."""
        if self.status is not _S.VERIFICATION_SUCCESSFUL:
            self.verify()
        try:
            if self.on_activate is not None:
                self.on_activate(self.identifier, self.image())
        except Exception as exc:
            self.status = _S.ACTIVATION_FAILED
            raise CosemAccessError(AccessResult.OTHER_REASON, f"activation failed: {exc}") from exc
        self.status = _S.ACTIVATION_SUCCESSFUL

    # -- COSEM interface -----------------------------------------------------------------

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == 2:
            return Data.double_long_unsigned(self.block_size)
        if attribute == 3:
            return Data.bit_string(BitString.from_bits(b is not None for b in self._blocks))
        if attribute == 4:
            return Data.double_long_unsigned(self.first_missing_block())
        if attribute == 5:
            return Data.boolean(self.enabled)
        if attribute == 6:
            return Data.enum(self.status)
        if self.status < _S.VERIFICATION_SUCCESSFUL or self.status is _S.VERIFICATION_FAILED:
            return Data.array(())
        info = (Data.double_long_unsigned(self.size), Data.octet_string(self.identifier))
        return Data.array((Data.structure((*info, Data.octet_string(b""))),))

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == 5:
            self.enabled = expect_bool(value, "image_transfer_enabled")
            return
        raise CosemAccessError(
            AccessResult.READ_WRITE_DENIED, f"{self!r} attribute {attribute} is read-only"
        )

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        if method == 1:
            identifier, size = expect_items(_required(parameters), DataTag.STRUCTURE, 2, "initiate")
            self.initiate(
                expect_bytes(identifier, "image_identifier"),
                expect_int(size, DataTag.DOUBLE_LONG_UNSIGNED, what="image_size"),
            )
        elif method == 2:
            number, value = expect_items(_required(parameters), DataTag.STRUCTURE, 2, "block")
            self.transfer_block(
                expect_int(number, DataTag.DOUBLE_LONG_UNSIGNED, what="image_block_number"),
                expect_bytes(value, "image_block_value"),
            )
        elif method == 3:
            self.verify()
        else:
            self.activate()
        return None


def _required(parameters: Data | None) -> Data:
    if parameters is None:
        raise CosemAccessError(AccessResult.TYPE_UNMATCHED, "method parameters missing")
    return parameters
