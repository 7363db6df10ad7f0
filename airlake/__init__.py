"""airlake: the data platform of Here Comes The Airplane.

One namespace: the layout's folders (``catalog/``, ``lake/``, ``sources/``, ``pipelines/``, ``stack/``, ``bench/``)
are the subpackages ``airlake.catalog``, ``airlake.lake``, and so on (setup.cfg's ``package_dir``); an installed
airlake has nothing else at site-packages' top level. In a source checkout used without installing it (a
``PYTHONPATH`` that names the checkout, as the benchmark's dlt environment has), the checkout's root is added to
this package's path so that the same names resolve to those folders.
"""

import os as _os

__version__ = "0.1.0"

_CHECKOUT = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_CHECKOUT, "setup.cfg")) and _os.path.isdir(_os.path.join(_CHECKOUT, "sources")):
    __path__.append(_CHECKOUT)  # noqa: F821 - a package's module global
