"""placeholder"""

from tfcontrast.config import base


def get_config():
    c = base("vicreg")
    return c
