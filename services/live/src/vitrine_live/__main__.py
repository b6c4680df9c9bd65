"""``python -m vitrine_live``: run the live service."""

from vitrine.runtime.service import run
from vitrine_live.service import DEFINITION

if __name__ == "__main__":
    run(DEFINITION)
