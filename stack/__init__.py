"""The native server stack: PostgreSQL, SeaweedFS S3, FerretDB, Trino and Superset under supervisord.

May import :mod:`airlake.settings`, :mod:`airlake.sources`, :mod:`airlake.lake`, :mod:`airlake.catalog` and
:mod:`airlake.pipelines` (docs/architecture.md).

``airlake stack install`` fetches and builds each component, version-pinned, into a cache shared by checkouts
(``~/.cache/airlake/<component>-<version>``); ``airlake stack up`` runs them as supervised processes bound to
127.0.0.1 with their data, logs and pid files in ``<state_dir>/stack``. One module per concern:

- :mod:`stack.layout`: where everything lives (cache, state, binaries) and the pinned versions;
- :mod:`stack.credentials`: the secrets generated into ``.env``, and writing files that hold secrets (mode 0600);
- :mod:`stack.components`: installing each component into the cache;
- :mod:`stack.services`: what each service runs, its port and its health check;
- :mod:`stack.supervisor`: the generated ``supervisord.conf`` and talking to supervisord;
- :mod:`stack.bootstrap`: first-start steps (databases and users, the bucket, the lake's tables, Superset's
  metadata);
- :mod:`stack.install`, :mod:`stack.up`, :mod:`stack.down`, :mod:`stack.status`, :mod:`stack.logs`: the commands.
"""
