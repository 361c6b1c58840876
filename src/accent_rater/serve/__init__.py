"""The surfaces over ``Rater``: the REST API (``api``, ``schemas``, ``upload``, ``limits``), the web
app (``ui``, ``ui_label``) and batch rating (``batch`` on the local-or-Ray ``engine``). Rating a
recording never imports this package; the CLI reaches into it for ``serve``, ``ui`` and ``batch``."""
