"""``python -m vitrine_dashboard``: run the dashboard service."""

from vitrine.runtime.service import run
from vitrine_dashboard.service import DEFINITION

if __name__ == "__main__":
    run(DEFINITION)
