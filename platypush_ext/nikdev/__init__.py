"""The ``nikdev`` plugin: NikDev IoT uploads through a durable outbox."""
