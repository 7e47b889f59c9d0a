"""The Platypush side of the bundle, once: actions and their argument checks (:mod:`.actions`), the
plugin bases (:mod:`.plugin`), the delivery pipeline of what is read destructively (:mod:`.delivery`),
the web panel's listings (:mod:`.webpanel`). The services' plugins build on these; nothing
framework-free imports them (that is :mod:`platypush_ext.core`)."""
