"""SOAR: teachers that write the problems a student needs to escape a reward plateau."""
__version__ = "0.1.0"
