"""airlake: the data platform of Here Comes The Airplane."""

__version__ = "0.1.0"
