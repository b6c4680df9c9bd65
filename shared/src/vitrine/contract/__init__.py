"""The contract: what is on the wire (envelope, event models, topic registry). Imports nothing
from the runtime or the tools, so an integrator can depend on it alone."""
