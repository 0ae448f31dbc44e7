"""``python -m tfcontrast``: the ``tfcontrast`` command (:mod:`tfcontrast.cli`)."""

from tfcontrast.cli import run

if __name__ == "__main__":
    run()
