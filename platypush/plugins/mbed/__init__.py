# Installed by platypush-ext: Platypush discovers plugins only under its own package.
from platypush_ext.mbed.plugin import MbedPlugin

__all__ = ["MbedPlugin"]
