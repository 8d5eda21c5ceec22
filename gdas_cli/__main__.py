"""`python -m gdas_cli`: the `gdas` command, for environments without the console script on PATH."""

from .cli import main

if __name__ == "__main__":
    main()
