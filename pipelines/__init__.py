"""What moves data: the Beam transforms, the firehose readers and the speed (streaming) pipeline.

May import :mod:`airlake.settings`, :mod:`airlake.sources`, :mod:`airlake.lake` and :mod:`airlake.catalog`
(docs/architecture.md).
"""
