"""``python -m vitrine.tools.cli`` — the same as the ``vitrine`` command."""

from vitrine.tools.cli import main

if __name__ == "__main__":
    main()
