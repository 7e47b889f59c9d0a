"""The Platypush side of the bundle, once: actions and their argument checks (:mod:`.actions`), the
plugin base (:mod:`.plugin`), the web panel's listings (:mod:`.webpanel`). The services' plugins
build on these; nothing framework-free imports them (that is :mod:`platypush_ext.core`)."""
