"""placeholder"""

from tfcontrast.config import base


def get_config():
    c = base("barlow_twins")
    return c
