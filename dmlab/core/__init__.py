"""The domain, web-free: the session engine, the device lifecycle, job planners and
domain errors. It takes a store and an event bus and knows nothing of HTTP; the
server authenticates, parses, calls it and renders the answer."""
