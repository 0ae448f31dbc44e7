"""The packaged run configs (installed as ``tfcontrast.configs``); ``tfcontrast configs`` lists them."""
