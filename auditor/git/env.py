"""The environment of every git process auditor starts (light: the command imports it before anything heavy)."""

from __future__ import annotations

import os

# The repository is named explicitly, so inherited GIT_* variables must not point git elsewhere, replace refs must
# not swap the objects scanned, and a partial clone must not fetch (git ≥ 2.44).
GIT_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_NO_REPLACE_OBJECTS": "1", "GIT_NO_LAZY_FETCH": "1"}
