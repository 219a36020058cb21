"""Developer tooling that is not installed with the package (lint contracts)."""
