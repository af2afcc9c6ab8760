"""``python -m etafinder``."""

from etafinder.cli import main

if __name__ == "__main__":
    main()
