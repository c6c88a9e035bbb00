"""Events and alarms services (issue 6): spontaneous-message listener, outage correlation,
concentrator monitoring and automatic MeterSync, all asyncio over the store."""
