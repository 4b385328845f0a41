"""DSPy prompt modules: signatures, programs, metrics, datasets, the compile runner, artefacts.

litellm (pulled in by dspy, imported when some DSPy paths run) fetches a model price list at
import unless told to use its bundled copy; ragloom runs offline, so that is the default here.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
