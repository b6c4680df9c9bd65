"""``python -m vitrine_showcase``: run the showcase service."""

from vitrine.service import run
from vitrine_showcase.service import DEFINITION

if __name__ == "__main__":
    run(DEFINITION)
