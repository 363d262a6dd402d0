"""The playground: one page to try a model by hand, served beside the model server's own routes.

``python -m inference.playground --model-dir DIR [--items FILE] [--port N]`` serves the page at ``/``
next to ``/ping`` and ``/invocations`` (the very app :func:`inference.predictor.create_app` builds), so
every recommendation on the page is an ``/invocations`` answer. The page's own routes, under
``/playground/``, browse the catalogue (:mod:`inference.playground.catalogue`), answer the most-popular
comparison and show the model's report (:mod:`inference.playground.app`). Plain HTML and JavaScript in
``static/``: nothing to build.
"""
