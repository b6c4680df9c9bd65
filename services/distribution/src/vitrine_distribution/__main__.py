"""``python -m vitrine_distribution``: run the distribution service."""

from vitrine.runtime.service import run
from vitrine_distribution.service import DEFINITION

if __name__ == "__main__":
    run(DEFINITION)
