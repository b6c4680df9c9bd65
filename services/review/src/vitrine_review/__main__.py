"""``python -m vitrine_review``: run the review service."""

from vitrine.runtime.service import run
from vitrine_review.service import DEFINITION

if __name__ == "__main__":
    run(DEFINITION)
