"""platypush-ext: Pushjet, Ge.tt, NikDev and mbed plugins for Platypush."""

__version__ = "0.1.0"
