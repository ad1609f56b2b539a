"""The Grafana dashboards of ``deploy/grafana/generate.py``.

``builder`` lays panels out, ``panels`` holds the panels several dashboards share, and
``overview``, ``per_user``, ``execution`` and ``marketdata`` build one dashboard each.
"""
