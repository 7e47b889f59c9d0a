# Installed by platypush-ext: Platypush discovers plugins only under its own package.
from platypush_ext.nikdev.plugin import NikdevPlugin

__all__ = ["NikdevPlugin"]
