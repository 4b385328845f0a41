"""DSPy prompt modules: signatures, programs, metrics, datasets, the compile runner, artefacts.

litellm (pulled in by dspy, imported only when some DSPy paths run; ragloom's own LM adapter
never uses it) fetches a model price list at import unless `LITELLM_LOCAL_MODEL_COST_MAP=True`.
Importing this package changes no environment variable: the CLI, the Makefile and the tests set
it; an application that runs litellm offline sets it itself.
"""
