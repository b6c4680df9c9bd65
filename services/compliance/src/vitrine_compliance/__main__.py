"""``python -m vitrine_compliance``: run the compliance service."""

from vitrine.runtime.service import run
from vitrine_compliance.service import DEFINITION

if __name__ == "__main__":
    run(DEFINITION)
