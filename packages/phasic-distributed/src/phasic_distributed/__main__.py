"""``python -m phasic_distributed doctor`` (same as ``phasic-distributed``)."""

import sys

from .cli import main

sys.exit(main())
