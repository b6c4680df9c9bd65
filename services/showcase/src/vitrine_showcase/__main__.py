"""``python -m vitrine_showcase``: run the showcase service."""

from vitrine.runtime.service import run
from vitrine_showcase.service import DEFINITION

if __name__ == "__main__":
    run(DEFINITION)
