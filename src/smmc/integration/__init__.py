"""CIM integration with the commercial system (Legacy): IEC 61968-100 messages carrying
IEC 61968-9 payloads, parsed with hardened XML and served over SOAP 1.1 (``soap``)."""
