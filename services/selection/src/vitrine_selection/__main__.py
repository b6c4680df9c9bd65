"""``python -m vitrine_selection``: run the selection service."""

from vitrine.runtime.service import run
from vitrine_selection.service import DEFINITION

if __name__ == "__main__":
    run(DEFINITION)
