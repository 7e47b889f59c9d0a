# Installed by platypush-ext: Platypush discovers plugins only under its own package.
from platypush_ext.gett.plugin import GettPlugin

__all__ = ["GettPlugin"]
