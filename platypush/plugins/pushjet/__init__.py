# Installed by platypush-ext: Platypush discovers plugins only under its own package.
from platypush_ext.pushjet.plugin import PushjetPlugin

__all__ = ["PushjetPlugin"]
