"""``python -m vitrine_review``: run the review service."""

from vitrine.service import run
from vitrine_review.service import DEFINITION

if __name__ == "__main__":
    run(DEFINITION)
