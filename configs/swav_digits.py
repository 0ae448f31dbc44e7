"""placeholder"""

from tfcontrast.config import base


def get_config():
    c = base("swav")
    return c
