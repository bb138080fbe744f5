"""The web UI: server-rendered pages served by the tracking server's app at ``/``
(``tracejudge server`` or ``tracejudge ui``); see :func:`tracejudge.ui.pages.add_ui`."""
