"""``python -m workers.delivery``: run a delivery worker."""

from __future__ import annotations

import sys

from workers.delivery.worker import main

sys.exit(main())
