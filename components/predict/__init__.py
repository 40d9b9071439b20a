"""``clpipe predict``: apply an exported model (common/model_files.py) to images.

Not a pipeline stage but shaped like one (``stage.py`` typed entry point, ``cli.py`` generated
from it, pure ``logic.py``), so the same error contract holds and a KFP component for batch
prediction is one call away. No ``component.py`` yet: nothing in the pipeline predicts.
"""
