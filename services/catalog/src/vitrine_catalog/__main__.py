"""``python -m vitrine_catalog``: run the catalog service."""

from vitrine.runtime.service import run
from vitrine_catalog.service import DEFINITION

if __name__ == "__main__":
    run(DEFINITION)
