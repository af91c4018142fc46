"""adaptc: adaptive-inference compiler on Apache TVM."""
__version__ = "0.1.0"
